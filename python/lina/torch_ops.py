"""The torch path: validation of the caller's tensors, then one call of the lina::forward custom
op (torch_library.py), differentiable through the compiler-derived backward. CUDA tensors run
lina's kernels; CPU tensors run the reference interpreter (double precision inside).

Everything here is plain Python over the Op's cached signature, so torch.compile traces it
without a graph break (cu_seqlens values are checked only when they are on the CPU, which costs
no device sync; pass them on the GPU inside a compiled region)."""
import torch

from . import signature
from .signature import fail

_GPU_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
_CPU_DTYPES = (torch.bfloat16, torch.float16, torch.float32, torch.float64)


def _check_inputs(op, inputs):
    signature.check_input_names(op, inputs)
    names = list(op.input_shapes)
    for name in names:
        if not isinstance(inputs[name], torch.Tensor):
            fail(f"input '{name}': expected a torch.Tensor [B, T, H(, d)]; got {type(inputs[name]).__name__}")
    first = inputs[names[0]]
    if first.device.type not in ("cuda", "cpu"):
        fail(f"input '{names[0]}': expected a CUDA tensor (kernels) or a CPU tensor (the reference); "
             f"got device {first.device}")
    allowed = _GPU_DTYPES if first.device.type == "cuda" else _CPU_DTYPES
    if first.dtype not in allowed:
        fail(f"input '{names[0]}': expected one of {', '.join(str(d) for d in allowed)} on {first.device.type}; "
             f"got {first.dtype}")
    for name in names:
        if inputs[name].device != first.device:
            fail(f"input '{name}': expected device {first.device} like '{names[0]}'; got {inputs[name].device}")
    B, T, H, dims = signature.check_input_shapes(op, {n: tuple(inputs[n].shape) for n in names})
    return names, B, T, H, dims, first.dtype


def _check_cu_seqlens(cu_seqlens, B, T, device):
    if cu_seqlens is None:
        return None, B
    if not isinstance(cu_seqlens, torch.Tensor) or cu_seqlens.dtype not in (torch.int32, torch.int64):
        fail("cu_seqlens: expected an int32 or int64 tensor [N + 1]; got "
             f"{getattr(cu_seqlens, 'dtype', type(cu_seqlens).__name__)}")
    N = signature.check_cu_seqlens_shape(tuple(cu_seqlens.shape), B)
    if cu_seqlens.device.type == "cpu":  # values are checked only where that costs no device sync
        signature.check_cu_seqlens_values(cu_seqlens.tolist(), T)
        cu_seqlens = cu_seqlens.to(device, non_blocking=True)
    elif cu_seqlens.device != device:
        fail(f"cu_seqlens: expected device {device} or cpu; got {cu_seqlens.device}")
    return cu_seqlens.contiguous(), N


def _tensors(kind, given, names, device, dtype):
    out = []
    for name in names:
        t = given[name]
        if t.device != device:
            fail(f"{kind} '{name}': expected device {device}; got {t.device}")
        out.append(t.to(dtype).contiguous())
    return out


def run_op(op, inputs, initial_state, output_final_state, cu_seqlens, scalar_params, vector_params, strategy, chunk):
    from . import torch_library
    signature.check_scalar_params(op, scalar_params)
    names, B, T, H, dims, dtype = _check_inputs(op, inputs)
    device = inputs[names[0]].device
    cu, N = _check_cu_seqlens(cu_seqlens, B, T, device)
    initial = signature.state_names_in_order(op, initial_state)
    state_names = [s for s in op.state_shapes if initial.get(s) is not None]
    for s in state_names:
        if not isinstance(initial[s], torch.Tensor):
            fail(f"initial_state '{s}': expected a torch.Tensor; got {type(initial[s]).__name__}")
        signature.check_state_shape(op, s, tuple(initial[s].shape), N, H, dims)
    signature.check_vector_params(op, vector_params)
    vparam_names = list(op.vector_params)
    for name in vparam_names:
        if not isinstance(vector_params[name], torch.Tensor):
            fail(f"vector_params '{name}': expected a torch.Tensor; got {type(vector_params[name]).__name__}")
        signature.check_vector_shape(op, name, tuple(vector_params[name].shape), H, dims)
    # States and vector params are fp32 (float64 on the CPU reference path in float64). One element
    # type per kernel: every per-step input in the first input's dtype (a gate given in fp32 with
    # bf16 q/k/v, as fla's simple GLA takes it, is converted).
    states = _tensors("initial_state", initial, state_names, device, torch_library.state_dtype(dtype))
    vparams = _tensors("vector_params", vector_params, vparam_names, device, torch_library.state_dtype(dtype))
    tensors = [inputs[n].to(dtype).contiguous() for n in names]
    config = torch_library.make_config(names, state_names, vparam_names, scalar_params, output_final_state,
                                       strategy, chunk)
    results = torch_library.forward(op.key, config, tensors, states, vparams, cu)
    n_out = len(op.output_shapes)
    outs = results[:n_out]
    if not output_final_state:
        return (*outs, None)
    finals = results[n_out:]
    return (*outs, finals[0] if len(finals) == 1 else tuple(finals))
