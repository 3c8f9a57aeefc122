"""The GPU path for torch tensors: validation, one differentiable call per op (forward and the
compiler-derived backward on the caller's current stream, raw device pointers, no copies for
contiguous inputs, no host synchronization)."""
import torch

from . import _lina

_DTYPES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def _fail(message):
    raise _lina.LinaError(message)


def _check_inputs(op, inputs):
    decls = {d["name"]: d for d in op.program.inputs}
    for name in inputs:
        if name not in decls:
            _fail(f"input '{name}': @{op.name} has no such input; it reads {', '.join(decls)}")
    names = [d["name"] for d in op.program.inputs]
    for name in names:
        if name not in inputs or not isinstance(inputs[name], torch.Tensor):
            _fail(f"input '{name}': expected a torch.Tensor [B, T, H(, d)]; got {type(inputs.get(name)).__name__}")
    first = inputs[names[0]]
    if first.device.type != "cuda":
        _fail(f"input '{names[0]}': expected a CUDA tensor; got device {first.device} "
              "(use op.reference(...) on the CPU)")
    if first.dtype not in _DTYPES:
        _fail(f"input '{names[0]}': expected bf16, fp16 or fp32; got {first.dtype}")
    if first.dim() < 3:
        _fail(f"input '{names[0]}': expected [B, T, H(, d)]; got shape {tuple(first.shape)}")
    B, T, H = first.shape[:3]
    dims = {}
    for name in names:
        x = inputs[name]
        shape = decls[name]["shape"]
        expected_rank = 3 + len(shape)
        if x.device != first.device:
            _fail(f"input '{name}': expected device {first.device} like '{names[0]}'; got {x.device}")
        if x.dim() != expected_rank or tuple(x.shape[:3]) != (B, T, H):
            want = f"[{B}, {T}, {H}" + "".join(f", {dims.get(d, d)}" for d in shape) + "]"
            _fail(f"input '{name}': expected shape {want}; got {tuple(x.shape)}")
        for i, d in enumerate(shape):
            size = int(x.shape[3 + i])
            if dims.setdefault(d, size) != size:
                _fail(f"input '{name}': dim {d} is {size} here but {dims[d]} elsewhere; they must agree")
    return names, int(B), int(T), int(H), dims, first.dtype


def _check_cu_seqlens(cu_seqlens, B, T, device):
    if cu_seqlens is None:
        return None, 0
    if not isinstance(cu_seqlens, torch.Tensor) or cu_seqlens.dim() != 1 or cu_seqlens.dtype not in (torch.int32, torch.int64):
        _fail("cu_seqlens: expected a 1-D int32 or int64 tensor [N + 1]; got "
              f"{getattr(cu_seqlens, 'dtype', type(cu_seqlens).__name__)} {tuple(getattr(cu_seqlens, 'shape', ()))}")
    if B != 1:
        _fail(f"cu_seqlens: packed sequences need batch size 1; got B = {B} (flatten the batch into T)")
    if cu_seqlens.numel() < 1:
        _fail("cu_seqlens: expected at least one entry [0]")
    if cu_seqlens.device.type == "cpu":  # values are checked only where that costs no device sync
        values = cu_seqlens.tolist()
        if values[0] != 0:
            _fail(f"cu_seqlens: expected the first entry 0; got {values[0]}")
        for i in range(1, len(values)):
            if values[i] < values[i - 1]:
                _fail(f"cu_seqlens: expected non-decreasing offsets; entry {i} ({values[i]}) < entry {i - 1} ({values[i - 1]})")
        if values[-1] != T:
            _fail(f"cu_seqlens: expected the last entry to equal T = {T}; got {values[-1]}")
        cu_seqlens = cu_seqlens.to(device, non_blocking=True)
    elif cu_seqlens.device != device:
        _fail(f"cu_seqlens: expected device {device} or cpu; got {cu_seqlens.device}")
    return cu_seqlens.contiguous(), cu_seqlens.numel() - 1


def _state_dict(op, initial_state, N, H, dims, device):
    states = op.program.states
    if initial_state is None:
        return {}
    if isinstance(initial_state, torch.Tensor):
        if len(states) != 1:
            _fail(f"initial_state: @{op.name} has {len(states)} states; pass a tuple in the order "
                  f"{', '.join(s['name'] for s in states)}")
        initial_state = {states[0]["name"]: initial_state}
    elif isinstance(initial_state, (tuple, list)):
        if len(initial_state) != len(states):
            _fail(f"initial_state: expected {len(states)} tensors ({', '.join(s['name'] for s in states)}); "
                  f"got {len(initial_state)}")
        initial_state = {s["name"]: t for s, t in zip(states, initial_state)}
    out = {}
    for s in states:
        t = initial_state.get(s["name"])
        if t is None:
            continue
        want = (N, H, dims[s["shape"][0]], dims[s["shape"][1]])
        if tuple(t.shape) != want:
            _fail(f"initial_state '{s['name']}': expected shape {list(want)} (N = number of sequences); got {tuple(t.shape)}")
        if t.device != device:
            _fail(f"initial_state '{s['name']}': expected device {device}; got {t.device}")
        out[s["name"]] = t.float().contiguous()
    return out


class _Function(torch.autograd.Function):
    @staticmethod
    def forward(ctx, call, *tensors):
        n_in, n_state = len(call["names"]), len(call["state_names"])
        inputs = dict(zip(call["names"], tensors[:n_in]))
        initial = dict(zip(call["state_names"], tensors[n_in:n_in + n_state]))
        p = call["program"]
        B, T, H, dims, dtype = call["B"], call["T"], call["H"], call["dims"], call["dtype"]
        any_input = tensors[0]
        outputs = {}
        for d in p.outputs:
            shape = (B, T, H) + tuple(dims[x] for x in d["shape"])
            outputs[d["name"]] = torch.empty(shape, dtype=any_input.dtype, device=any_input.device)
        finals = {}
        if call["output_final_state"]:
            for s in p.states:
                finals[s["name"]] = torch.empty((call["N"], H, dims[s["shape"][0]], dims[s["shape"][1]]),
                                                dtype=torch.float32, device=any_input.device)
        ptr = lambda m: {k: v.data_ptr() for k, v in m.items()}
        p.forward(dtype=dtype, batch=B, time=T, heads=H, dims=dims, inputs=ptr(inputs), outputs=ptr(outputs),
                  initial_states=ptr(initial), final_states=ptr(finals), scalar_params=call["scalar_params"],
                  vector_params={}, cu_seqlens=call["cu_ptr"], cu_seqlens64=call["cu64"],
                  num_sequences=call["N"], stream=torch.cuda.current_stream(any_input.device).cuda_stream,
                  strategy=call["strategy"], chunk=call["chunk"])
        ctx.call = call
        ctx.save_for_backward(*tensors, *finals.values())
        ctx.final_names = list(finals)
        return tuple(outputs.values()) + tuple(finals.values())

    @staticmethod
    def backward(ctx, *grads):
        call = ctx.call
        p = call["program"]
        saved = ctx.saved_tensors
        n_in, n_state = len(call["names"]), len(call["state_names"])
        inputs = dict(zip(call["names"], saved[:n_in]))
        initial = dict(zip(call["state_names"], saved[n_in:n_in + n_state]))
        finals = dict(zip(ctx.final_names, saved[n_in + n_state:]))
        out_names = [d["name"] for d in p.outputs]
        out_grads = {n: g.contiguous() for n, g in zip(out_names, grads[:len(out_names)]) if g is not None}
        dht = {n: g.float().contiguous() for n, g in zip(ctx.final_names, grads[len(out_names):]) if g is not None}
        any_input = saved[0]
        input_grads = {n: torch.empty_like(t) for n, t in inputs.items() if ctx.needs_input_grad[1 + call["names"].index(n)]}
        state_grads = {n: torch.empty_like(t) for n, t in initial.items()
                       if ctx.needs_input_grad[1 + n_in + call["state_names"].index(n)]}
        ptr = lambda m: {k: v.data_ptr() for k, v in m.items()}
        p.backward(dtype=call["dtype"], batch=call["B"], time=call["T"], heads=call["H"], dims=call["dims"],
                   inputs=ptr(inputs), initial_states=ptr(initial), scalar_params=call["scalar_params"],
                   vector_params={}, cu_seqlens=call["cu_ptr"], cu_seqlens64=call["cu64"],
                   num_sequences=call["N"], stream=torch.cuda.current_stream(any_input.device).cuda_stream,
                   output_grads=ptr(out_grads), final_state_grads=ptr(dht), final_states=ptr(finals),
                   input_grads=ptr(input_grads), initial_state_grads=ptr(state_grads), param_grads={},
                   strategy=call["strategy"], chunk=call["chunk"])
        result = [None]
        result += [input_grads.get(n) for n in call["names"]]
        result += [state_grads.get(n) for n in call["state_names"]]
        return tuple(result)


def run_op(op, inputs, initial_state, output_final_state, cu_seqlens, scalar_params, vector_params, strategy, chunk):
    if vector_params:
        _fail("vector_params: not supported on the torch path yet; use op.reference(...) for programs with vector params")
    names, B, T, H, dims, dtype = _check_inputs(op, inputs)
    device = inputs[names[0]].device
    cu, N = _check_cu_seqlens(cu_seqlens, B, T, device)
    if cu is None:
        N = B
    initial = _state_dict(op, initial_state, N, H, dims, device)
    # One element type per kernel: every per-step input in the first input's dtype (a gate given
    # in fp32 with bf16 q/k/v, as fla's simple GLA takes it, is converted).
    tensors = [inputs[n].to(dtype).contiguous() for n in names]
    state_names = list(initial)
    call = dict(program=op.program, names=names, state_names=state_names, B=B, T=T, H=H, N=N, dims=dims,
                dtype=_DTYPES[dtype], scalar_params={k: float(v) for k, v in scalar_params.items()},
                cu_ptr=0 if cu is None else cu.data_ptr(), cu64=cu is not None and cu.dtype == torch.int64,
                cu_ref=cu, output_final_state=output_final_state, strategy=strategy, chunk=chunk)
    results = _Function.apply(call, *tensors, *[initial[n] for n in state_names])
    n_out = len(op.program.outputs)
    outs = results[:n_out]
    finals = results[n_out:] if output_final_state else None
    if finals is not None and len(finals) == 1:
        finals = finals[0]
    elif finals is not None:
        finals = tuple(finals)
    return (*outs, finals)
