"""Checks of the caller's arrays against a program's signature, on shapes alone, shared by the
torch path and the DLPack path. Plain Python over the Op's cached signature (torch.compile traces
it). Every error names the argument, the expected and the actual value."""
from . import _lina


def fail(message):
    raise _lina.LinaError(message)


def check_input_names(op, given):
    for name in given:
        if name not in op.input_shapes:
            fail(f"input '{name}': @{op.name} has no such input; it reads {', '.join(op.input_shapes)}")
    for name in op.input_shapes:
        if name not in given:
            fail(f"input '{name}': missing; @{op.name} reads {', '.join(op.input_shapes)}")


def check_input_shapes(op, shapes):
    """shapes: input name -> shape tuple. Returns (B, T, H, dims)."""
    names = list(op.input_shapes)
    first = tuple(shapes[names[0]])
    if len(first) < 3:
        fail(f"input '{names[0]}': expected [B, T, H(, d)]; got shape {first}")
    B, T, H = first[:3]
    dims = {}
    for name in names:
        shape, decl = tuple(shapes[name]), op.input_shapes[name]
        if len(shape) != 3 + len(decl) or shape[:3] != (B, T, H):
            want = f"[{B}, {T}, {H}" + "".join(f", {dims.get(d, d)}" for d in decl) + "]"
            fail(f"input '{name}': expected shape {want}; got {shape}")
        for i, d in enumerate(decl):
            size = int(shape[3 + i])
            if dims.setdefault(d, size) != size:
                fail(f"input '{name}': dim {d} is {size} here but {dims[d]} elsewhere; they must agree")
    return int(B), int(T), int(H), dims


def check_cu_seqlens_shape(shape, B):
    if len(shape) != 1 or shape[0] < 1:
        fail(f"cu_seqlens: expected a 1-D array [N + 1] starting with 0; got shape {tuple(shape)}")
    if B != 1:
        fail(f"cu_seqlens: packed sequences need batch size 1; got B = {B} (flatten the batch into T)")
    return int(shape[0]) - 1


def check_cu_seqlens_values(values, T):
    if values[0] != 0:
        fail(f"cu_seqlens: expected the first entry 0; got {values[0]}")
    for i in range(1, len(values)):
        if values[i] < values[i - 1]:
            fail(f"cu_seqlens: expected non-decreasing offsets; entry {i} ({values[i]}) < entry {i - 1} ({values[i - 1]})")
    if values[-1] != T:
        fail(f"cu_seqlens: expected the last entry to equal T = {T}; got {values[-1]}")


def state_names_in_order(op, initial_state, argument="initial_state"):
    """A per-state argument (None, one array, a tuple in the program's state order, or a dict) as
    a dict; `argument` names it in errors."""
    states = list(op.state_shapes)
    if initial_state is None:
        return {}
    if isinstance(initial_state, dict):
        for name in initial_state:
            if name not in op.state_shapes:
                fail(f"{argument} '{name}': @{op.name} has no such state; it has {', '.join(states)}")
        return dict(initial_state)
    if isinstance(initial_state, (tuple, list)):
        if len(initial_state) != len(states):
            fail(f"{argument}: expected {len(states)} arrays ({', '.join(states)}); got {len(initial_state)}")
        return dict(zip(states, initial_state))
    if len(states) != 1:
        fail(f"{argument}: @{op.name} has {len(states)} states; pass a tuple in the order {', '.join(states)}")
    return {states[0]: initial_state}


def check_state_shape(op, name, shape, N, H, dims, argument="initial_state"):
    rows, cols = op.state_shapes[name]
    want = (N, H, dims[rows], dims[cols])
    if tuple(shape) != want:
        fail(f"{argument} '{name}': expected shape {list(want)} ([N, H, {rows}, {cols}], N = number of "
             f"sequences); got {tuple(shape)}")


def check_vector_params(op, given):
    for name in given:
        if name not in op.vector_params:
            fail(f"vector_params '{name}': @{op.name} has no such vector param; it has "
                 f"{', '.join(op.vector_params) or 'none'}")
    for name in op.vector_params:
        if name not in given:
            fail(f"vector_params '{name}': missing; @{op.name} needs an [H, {op.vector_params[name]}] array for it")


def check_vector_shape(op, name, shape, H, dims):
    d = op.vector_params[name]
    want = (H, dims[d])
    if tuple(shape) != want:
        fail(f"vector_params '{name}': expected shape {list(want)} ([H, {d}]); got {tuple(shape)}")


def check_scalar_params(op, given):
    for name in given:
        if name not in op.scalar_params:
            fail(f"scalar_params '{name}': @{op.name} has no such scalar param; it has "
                 f"{', '.join(op.scalar_params) or 'none'}")
