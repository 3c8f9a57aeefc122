"""lina's two torch.library custom ops, lina::forward and lina::backward, with fake (meta)
implementations and autograd, so torch.compile(fullgraph=True) traces through a model that uses
them and CUDA graphs capture them.

One pair of ops serves every program: the program is named by a registry key and the call's
static settings travel in a config string, both constants to the compiler. On CUDA tensors the
ops launch lina's kernels (the caller's current stream, raw device pointers, no copies, no host
synchronization); on CPU tensors they run the reference interpreter in double precision, so
torch.autograd.gradcheck in float64 checks the derived backward against finite differences.
"""
from typing import Optional

import torch

from . import _lina

_PROGRAMS = {}  # registry key -> Op (lina.program.Op); filled when an Op is created, outside any trace


def register(op):
    _PROGRAMS[op.key] = op


# --- the config string: "key=value;..." with comma-separated lists (built by traced Python code,
# so only string operations a tracer understands) -------------------------------------------------

def make_config(inputs, states, vector_params, scalar_params, final, strategy, chunk):
    scalars = ",".join(f"{k}:{float(v)!r}" for k, v in scalar_params.items())
    return (f"inputs={','.join(inputs)};states={','.join(states)};vparams={','.join(vector_params)};"
            f"scalars={scalars};final={int(bool(final))};strategy={strategy};chunk={int(chunk)}")


def parse_config(config):
    fields = dict(item.split("=", 1) for item in config.split(";"))
    names = lambda key: [n for n in fields.get(key, "").split(",") if n]  # the backward's fields are optional
    scalars = {k: float(v) for k, v in (item.split(":", 1) for item in names("scalars"))}
    return dict(inputs=names("inputs"), states=names("states"), vparams=names("vparams"), scalars=scalars,
                final=fields["final"] == "1", strategy=fields["strategy"], chunk=int(fields["chunk"]),
                needs=names("needs"), out_grads=names("out_grads"), final_grads=names("final_grads"))


_DTYPES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def state_dtype(dtype):
    """States and vector params are fp32; the CPU reference path in float64 keeps float64 so
    gradcheck sees exact values."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _shapes(op, cfg, inputs, cu_seqlens):
    """B, T, H, N and the dims, read from the tensors (sizes may be symbolic under a trace)."""
    first = inputs[0]
    B, T, H = first.shape[0], first.shape[1], first.shape[2]
    dims = {}
    for name, x in zip(cfg["inputs"], inputs):
        for i, d in enumerate(op.input_shapes[name]):
            dims.setdefault(d, x.shape[3 + i])
    N = B if cu_seqlens is None else cu_seqlens.shape[0] - 1
    return B, T, H, N, dims


def _launch_args(op, cfg, inputs, initial_states, vector_params, cu_seqlens):
    """The arguments Program.forward and Program.backward share: shapes, the caller's tensors as
    device pointers, the current stream and device."""
    B, T, H, N, dims = _shapes(op, cfg, inputs, cu_seqlens)
    device = inputs[0].device
    return dict(dtype=_DTYPES[inputs[0].dtype], batch=B, time=T, heads=H, dims=dims,
                inputs=_ptrs(cfg["inputs"], inputs), initial_states=_ptrs(cfg["states"], initial_states),
                scalar_params=cfg["scalars"], vector_params=_ptrs(cfg["vparams"], vector_params),
                cu_seqlens=0 if cu_seqlens is None else cu_seqlens.data_ptr(),
                cu_seqlens64=cu_seqlens is not None and cu_seqlens.dtype == torch.int64, num_sequences=N,
                stream=torch.cuda.current_stream(device).cuda_stream, strategy=cfg["strategy"], chunk=cfg["chunk"],
                device=device.index or 0)


def _ptrs(names, tensors):
    return {n: t.data_ptr() for n, t in zip(names, tensors)}


def _output_specs(op, cfg, inputs, cu_seqlens):
    B, T, H, N, dims = _shapes(op, cfg, inputs, cu_seqlens)
    specs = [((B, T, H) + tuple(dims[d] for d in shape), inputs[0].dtype) for shape in op.output_shapes.values()]
    if cfg["final"]:
        specs += [((N, H, dims[r], dims[c]), state_dtype(inputs[0].dtype)) for r, c in op.state_shapes.values()]
    return specs


# --- lina::forward ---------------------------------------------------------------------------------

@torch.library.custom_op("lina::forward", mutates_args=())
def forward(program: str, config: str, inputs: list[torch.Tensor], initial_states: list[torch.Tensor],
            vector_params: list[torch.Tensor], cu_seqlens: Optional[torch.Tensor]) -> list[torch.Tensor]:
    op = _PROGRAMS[program]
    cfg = parse_config(config)
    if inputs[0].device.type == "cpu":
        if _llvm_path(inputs, cfg):
            return _llvm_forward(op, cfg, inputs, initial_states, vector_params, cu_seqlens)
        return _reference_forward(op, cfg, inputs, initial_states, vector_params, cu_seqlens)
    if cfg["strategy"] == "reference":
        raise _lina.LinaError("strategy='reference' runs the reference interpreter on CPU tensors; these are on "
                              f"{inputs[0].device}: move them to the CPU (x.cpu()) or pick auto, fused, split or recurrent")
    results = [torch.empty(shape, dtype=dtype, device=inputs[0].device)
               for shape, dtype in _output_specs(op, cfg, inputs, cu_seqlens)]
    n_out = len(op.output_shapes)
    launch = _launch_args(op, cfg, inputs, initial_states, vector_params, cu_seqlens)
    # The split strategies' scratch states come from torch's caching allocator: cached across
    # calls, and counted by torch.cuda.max_memory_allocated.
    nbytes = op.program.forward_workspace_bytes(**launch)
    workspace = torch.empty(nbytes, dtype=torch.uint8, device=inputs[0].device) if nbytes else None
    op.program.forward(**launch, outputs=_ptrs(op.output_shapes, results[:n_out]),
                       final_states=_ptrs(op.state_shapes, results[n_out:]),
                       workspace=0 if workspace is None else workspace.data_ptr(), workspace_bytes=nbytes)
    return results


@forward.register_fake
def _(program, config, inputs, initial_states, vector_params, cu_seqlens):
    op = _PROGRAMS[program]
    cfg = parse_config(config)
    return [inputs[0].new_empty(shape, dtype=dtype) for shape, dtype in _output_specs(op, cfg, inputs, cu_seqlens)]


def _numpy(t):
    return t.detach().to(torch.float64).cpu().numpy()


def _reference_problem(op, cfg, inputs, initial_states, vector_params, cu_seqlens):
    B, T, H, N, dims = _shapes(op, cfg, inputs, cu_seqlens)
    return dict(batch=int(B), time=int(T), heads=int(H), dims={k: int(v) for k, v in dims.items()},
                inputs={n: _numpy(t) for n, t in zip(cfg["inputs"], inputs)},
                initial_states={n: _numpy(t) for n, t in zip(cfg["states"], initial_states)},
                scalar_params=cfg["scalars"], vector_params={n: _numpy(t) for n, t in zip(cfg["vparams"], vector_params)},
                cu_seqlens=[] if cu_seqlens is None else [int(x) for x in cu_seqlens.tolist()])


def _reference_forward(op, cfg, inputs, initial_states, vector_params, cu_seqlens):
    outputs, finals = op.program.run_reference(
        **_reference_problem(op, cfg, inputs, initial_states, vector_params, cu_seqlens))
    results = [torch.from_numpy(outputs[n]).to(inputs[0].dtype) for n in op.output_shapes]
    if cfg["final"]:
        results += [torch.from_numpy(finals[n]).to(state_dtype(inputs[0].dtype)) for n in op.state_shapes]
    return results


def _llvm_path(inputs, cfg):
    """CPU tensors in fp32/bf16/fp16 run the LLVM backend's compiled chunked kernels (fp32 math);
    float64, strategy="reference" and builds without LLVM run the reference interpreter."""
    return (inputs[0].dtype != torch.float64 and cfg["strategy"] != "reference" and _lina.llvm_available())


def _llvm_forward(op, cfg, inputs, initial_states, vector_params, cu_seqlens):
    """The compiled kernels on the tensors' own fp32 memory (bf16/fp16 inputs are widened once):
    no copies for fp32 inputs; outputs allocated here and written in place."""
    B, T, H, N, dims = _shapes(op, cfg, inputs, cu_seqlens)
    f32 = lambda t: t.detach().to(torch.float32).contiguous()
    ins, init, vps = [f32(t) for t in inputs], [f32(t) for t in initial_states], [f32(t) for t in vector_params]
    specs = _output_specs(op, cfg, inputs, cu_seqlens)
    n_out = len(op.output_shapes)
    results = [torch.empty(shape, dtype=torch.float32) for shape, _ in specs]
    finals = results[n_out:] if cfg["final"] else [torch.empty((N, H, dims[r], dims[c]), dtype=torch.float32)
                                                    for r, c in op.state_shapes.values()]
    ptrs = lambda names, ts: {n: t.data_ptr() for n, t in zip(names, ts)}
    strategy = "auto" if cfg["strategy"] == "split" else cfg["strategy"]
    op.program.run_llvm_fp32(
        batch=int(B), time=int(T), heads=int(H), dims={k: int(v) for k, v in dims.items()},
        inputs=ptrs(cfg["inputs"], ins), outputs=ptrs(op.output_shapes, results[:n_out]),
        initial_states=ptrs(cfg["states"], init), final_states=ptrs(op.state_shapes, finals),
        vector_params=ptrs(cfg["vparams"], vps), scalar_params=cfg["scalars"],
        cu_seqlens=[] if cu_seqlens is None else [int(x) for x in cu_seqlens.tolist()], strategy=strategy,
        chunk=cfg["chunk"])
    return [r if r.dtype == dtype else r.to(dtype) for r, (_, dtype) in zip(results, specs)]


# --- lina::backward --------------------------------------------------------------------------------

@torch.library.custom_op("lina::backward", mutates_args=())
def backward(program: str, config: str, inputs: list[torch.Tensor], initial_states: list[torch.Tensor],
             vector_params: list[torch.Tensor], cu_seqlens: Optional[torch.Tensor], final_states: list[torch.Tensor],
             output_grads: list[torch.Tensor], final_grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """The gradients named in the config's `needs` (inputs, then initial states, then vector
    params), in that order."""
    op = _PROGRAMS[program]
    cfg = parse_config(config)
    if inputs[0].device.type == "cpu":
        return _reference_backward(op, cfg, inputs, initial_states, vector_params, cu_seqlens, output_grads,
                                   final_grads)
    grads = _empty_grads(cfg, inputs, initial_states, vector_params)
    by_kind = lambda kind: {n: g.data_ptr() for (k, n), g in grads.items() if k == kind}
    args = _launch_args(op, cfg, inputs, initial_states, vector_params, cu_seqlens)
    if args["strategy"] == "split":
        args["strategy"] = "auto"  # split is a forward strategy; the derived passes pick their own
    pointers = dict(output_grads=_ptrs(cfg["out_grads"], output_grads),
                    final_state_grads=_ptrs(cfg["final_grads"], final_grads),
                    final_states=_ptrs(op.state_shapes, final_states), input_grads=by_kind("input"),
                    initial_state_grads=by_kind("state"), param_grads=by_kind("vparam"))
    launch = {key: value for key, value in args.items() if key != "device"}
    # The scratch memory from torch's allocator: reused across steps, freed with the step's other
    # temporaries, and counted by torch.cuda.max_memory_allocated.
    nbytes = op.program.backward_workspace_bytes(**launch, **pointers)
    workspace = torch.empty(max(nbytes, 1), dtype=torch.uint8, device=inputs[0].device)
    op.program.backward(**args, **pointers, workspace=workspace.data_ptr(), workspace_bytes=nbytes)
    return list(grads.values())


def _needed(cfg, inputs, initial_states, vector_params):
    """(kind, name, like-tensor) for each gradient the config asks for, in the order returned."""
    needs = set(cfg["needs"])
    out = []
    for kind, names, ts in (("input", cfg["inputs"], inputs), ("state", cfg["states"], initial_states),
                            ("vparam", cfg["vparams"], vector_params)):
        out += [(kind, n, t) for n, t in zip(names, ts) if f"{kind}:{n}" in needs]
    return out


def _empty_grads(cfg, inputs, initial_states, vector_params):
    return {(k, n): torch.empty_like(t) for k, n, t in _needed(cfg, inputs, initial_states, vector_params)}


@backward.register_fake
def _(program, config, inputs, initial_states, vector_params, cu_seqlens, final_states, output_grads, final_grads):
    return list(_empty_grads(parse_config(config), inputs, initial_states, vector_params).values())


def _reference_backward(op, cfg, inputs, initial_states, vector_params, cu_seqlens, output_grads, final_grads):
    """On CPU tensors: the derived backward's two passes on the LLVM backend (fp32/bf16 inputs), or
    the reference's exact reverse mode (float64, strategy='reference', no LLVM)."""
    problem = _reference_problem(op, cfg, inputs, initial_states, vector_params, cu_seqlens)
    grads = dict(output_grads={n: _numpy(g) for n, g in zip(cfg["out_grads"], output_grads)},
                 final_state_grads={n: _numpy(g) for n, g in zip(cfg["final_grads"], final_grads)})
    engine = "llvm" if _llvm_path(inputs, cfg) else "reference"
    gi, gs, gv, _ = op.program.reference_backward(**problem, **grads, engine=engine, chunk=cfg["chunk"])
    found = {"input": gi, "state": gs, "vparam": gv}
    return [torch.from_numpy(found[k][n]).to(t.dtype) for k, n, t in _needed(cfg, inputs, initial_states,
                                                                               vector_params)]


# --- autograd --------------------------------------------------------------------------------------

def _setup_context(ctx, inputs, output):
    program, config, ins, initial, vparams, cu_seqlens = inputs
    n_out = len(_PROGRAMS[program].output_shapes)
    ctx.program, ctx.config = program, config
    ctx.counts = (len(ins), len(initial), len(vparams), len(output) - n_out)
    ctx.has_cu = cu_seqlens is not None
    ctx.save_for_backward(*ins, *initial, *vparams, *output[n_out:], *([cu_seqlens] if ctx.has_cu else []))


def _backward(ctx, grads):
    op = _PROGRAMS[ctx.program]
    cfg = parse_config(ctx.config)
    n_in, n_state, n_vp, n_final = ctx.counts
    saved = list(ctx.saved_tensors)
    ins, saved = saved[:n_in], saved[n_in:]
    initial, saved = saved[:n_state], saved[n_state:]
    vparams, saved = saved[:n_vp], saved[n_vp:]
    finals, saved = saved[:n_final], saved[n_final:]
    cu_seqlens = saved[0] if ctx.has_cu else None
    n_out = len(op.output_shapes)
    out_names = list(op.output_shapes)
    out_grads = [(n, g) for n, g in zip(out_names, grads[:n_out]) if g is not None]
    final_grads = [(n, g) for n, g in zip(op.state_shapes, grads[n_out:]) if g is not None]
    # needs_input_grad follows the op's arguments; for a list argument it is a list with one flag
    # per tensor, so only the gradients somebody needs are computed.
    needs = []
    for kind, names, arg in (("input", cfg["inputs"], 2), ("state", cfg["states"], 3), ("vparam", cfg["vparams"], 4)):
        flags = ctx.needs_input_grad[arg]
        if isinstance(flags, bool):
            flags = [flags] * len(names)
        needs += [f"{kind}:{n}" for n, need in zip(names, flags) if need]
    config = (ctx.config + f";needs={','.join(needs)};out_grads={','.join(n for n, _ in out_grads)}"
              f";final_grads={','.join(n for n, _ in final_grads)}")
    result = backward(ctx.program, config, ins, initial, vparams, cu_seqlens, finals,
                      [g.contiguous() for _, g in out_grads], [g.contiguous() for _, g in final_grads])
    it = iter(result)
    grad_lists = []
    for kind, names in (("input", cfg["inputs"]), ("state", cfg["states"]), ("vparam", cfg["vparams"])):
        grad_lists.append([next(it) if f"{kind}:{n}" in needs else None for n in names])
    return None, None, grad_lists[0], grad_lists[1], grad_lists[2], None


torch.library.register_autograd("lina::forward", _backward, setup_context=_setup_context)
