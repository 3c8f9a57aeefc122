"""Forward and backward on any arrays that speak DLPack (`__dlpack__`: PyTorch, CuPy, JAX, ...),
without torch: lina borrows the caller's device memory (no copies; arrays must be row-major
contiguous on a CUDA device), allocates its results as lina.DeviceArray (import them with your
framework's from_dlpack) and queues the kernels on the stream the caller names. No host
synchronization: the caller keeps its inputs alive until that stream has run the work, as with
any asynchronous call. cu_seqlens values are not checked here (they live on the device)."""
from . import _lina, signature
from .signature import fail

_INPUT_DTYPES = ("bf16", "fp16", "fp32")


def _borrow(kind, given, stream):
    return {n: _lina.Borrowed(x, f"{kind} '{n}'", stream) for n, x in given.items()}


def _same_device(device, what, b):
    if b.device != device:
        fail(f"{what}: expected CUDA device {device} like the inputs; got device {b.device}")


def _fp32_on(device, kind, group):
    """Every array of `group` fp32 on `device` (states, their gradients, vector params)."""
    for n, b in group.items():
        if b.dtype != "fp32":
            fail(f"{kind} '{n}': expected fp32; got {b.dtype}")
        _same_device(device, f"{kind} '{n}'", b)


def _setup(op, inputs, initial_states, vector_params, scalar_params, cu_seqlens, stream):
    signature.check_input_names(op, inputs)
    signature.check_scalar_params(op, scalar_params)
    signature.check_vector_params(op, vector_params)
    ins = _borrow("input", inputs, stream)
    names = list(op.input_shapes)
    first = ins[names[0]]
    for n in names:
        if ins[n].dtype != first.dtype or first.dtype not in _INPUT_DTYPES:
            fail(f"input '{n}': expected {first.dtype if first.dtype in _INPUT_DTYPES else 'bf16, fp16 or fp32'} "
                 f"like '{names[0]}'; got {ins[n].dtype}")
        if ins[n].device != first.device:
            fail(f"input '{n}': expected CUDA device {first.device} like '{names[0]}'; got {ins[n].device}")
    B, T, H, dims = signature.check_input_shapes(op, {n: tuple(b.shape) for n, b in ins.items()})
    cu, N = None, B
    if cu_seqlens is not None:
        cu = _lina.Borrowed(cu_seqlens, "cu_seqlens", stream)
        if cu.dtype not in ("int32", "int64"):
            fail(f"cu_seqlens: expected int32 or int64; got {cu.dtype}")
        N = signature.check_cu_seqlens_shape(tuple(cu.shape), B)
        _same_device(first.device, "cu_seqlens", cu)
    states = _borrow("initial_state", signature.state_names_in_order(op, initial_states), stream)
    for n, b in states.items():
        signature.check_state_shape(op, n, tuple(b.shape), N, H, dims)
    vparams = _borrow("vector_params", vector_params, stream)
    for n, b in vparams.items():
        signature.check_vector_shape(op, n, tuple(b.shape), H, dims)
    for kind, group in (("initial_state", states), ("vector_params", vparams)):
        _fp32_on(first.device, kind, group)
    call = dict(dtype=first.dtype, batch=B, time=T, heads=H, dims=dims,
                inputs={n: b.pointer for n, b in ins.items()},
                initial_states={n: b.pointer for n, b in states.items()},
                scalar_params={k: float(v) for k, v in scalar_params.items()},
                vector_params={n: b.pointer for n, b in vparams.items()},
                cu_seqlens=0 if cu is None else cu.pointer, cu_seqlens64=cu is not None and cu.dtype == "int64",
                num_sequences=N, stream=stream, device=first.device)
    held = [ins, states, vparams, cu]  # the borrowed views live until the kernels are queued
    return call, held, dims


def forward(op, inputs, initial_states=None, vector_params=None, scalar_params=None, cu_seqlens=None,
            output_final_state=False, stream=0, strategy="auto", chunk=0):
    call, held, dims = _setup(op, inputs, initial_states, vector_params or {}, scalar_params or {}, cu_seqlens,
                              stream)
    B, T, H, N, device = call["batch"], call["time"], call["heads"], call["num_sequences"], call["device"]
    outputs = {n: _lina.DeviceArray([B, T, H] + [dims[d] for d in shape], call["dtype"], device)
               for n, shape in op.output_shapes.items()}
    finals = {}
    if output_final_state:
        finals = {n: _lina.DeviceArray([N, H, dims[r], dims[c]], "fp32", device) for n, (r, c) in op.state_shapes.items()}
    op.program.forward(**call, outputs={n: a.pointer for n, a in outputs.items()},
                       final_states={n: a.pointer for n, a in finals.items()}, strategy=strategy, chunk=chunk)
    for a in (*outputs.values(), *finals.values()):
        a.written_on(stream)  # a consumer's __dlpack__(stream=...) waits for this work
    del held
    return outputs, finals


def backward(op, inputs, output_grads, final_state_grads=None, initial_states=None, final_states=None,
             vector_params=None, scalar_params=None, cu_seqlens=None, stream=0, strategy="auto", chunk=0):
    call, held, dims = _setup(op, inputs, initial_states, vector_params or {}, scalar_params or {}, cu_seqlens,
                              stream)
    B, T, H, N, device = call["batch"], call["time"], call["heads"], call["num_sequences"], call["device"]
    for n in output_grads:
        if n not in op.output_shapes:
            fail(f"output_grads '{n}': @{op.name} has no such output; it has {', '.join(op.output_shapes)}")
    dout = _borrow("output_grads", output_grads, stream)
    for n, b in dout.items():
        want = (B, T, H) + tuple(dims[d] for d in op.output_shapes[n])
        if tuple(b.shape) != want or b.dtype != call["dtype"]:
            fail(f"output_grads '{n}': expected {call['dtype']} {list(want)}; got {b.dtype} {list(b.shape)}")
        _same_device(device, f"output_grads '{n}'", b)
    dht = _borrow("final_state_grads", signature.state_names_in_order(op, final_state_grads, "final_state_grads"),
                  stream)
    finals = _borrow("final_states", signature.state_names_in_order(op, final_states, "final_states"), stream)
    for kind, group in (("final_state_grads", dht), ("final_states", finals)):
        for n, b in group.items():
            signature.check_state_shape(op, n, tuple(b.shape), N, H, dims, kind)
        _fp32_on(device, kind, group)
    input_grads = {n: _lina.DeviceArray([B, T, H] + [dims[d] for d in shape], call["dtype"], device)
                   for n, shape in op.input_shapes.items()}
    state_grads = {n: _lina.DeviceArray([N, H, dims[r], dims[c]], "fp32", device)
                   for n, (r, c) in op.state_shapes.items() if n in call["initial_states"]}
    param_grads = {n: _lina.DeviceArray([H, dims[d]], "fp32", device) for n, d in op.vector_params.items()}
    op.program.backward(**call, output_grads={n: b.pointer for n, b in dout.items()},
                        final_state_grads={n: b.pointer for n, b in dht.items()},
                        final_states={n: b.pointer for n, b in finals.items()},
                        input_grads={n: a.pointer for n, a in input_grads.items()},
                        initial_state_grads={n: a.pointer for n, a in state_grads.items()},
                        param_grads={n: a.pointer for n, a in param_grads.items()}, strategy=strategy, chunk=chunk)
    for group in (input_grads, state_grads, param_grads):
        for a in group.values():
            a.written_on(stream)
    del held, dout, dht, finals
    return input_grads, state_grads, param_grads
