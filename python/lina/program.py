"""lina.compile: an op for any DSL program, with IR/CUDA views, the CPU reference and (with torch
on a GPU) a differentiable GPU call whose backward is the compiler-derived one."""
import hashlib
import os

from . import _lina


class Op:
    """A compiled recurrence. Inputs are named as in the program; per-step tensors are
    [B, T, H] or [B, T, H, d]; states [N, H, rows, cols] fp32; vector params [H, d]."""

    def __init__(self, program, key):
        self.program = program
        # The signature, cached as plain Python so a torch.compile trace reads it without calling
        # into the extension.
        self.key = key
        self.input_shapes = {d["name"]: list(d["shape"]) for d in program.inputs}
        self.output_shapes = {d["name"]: list(d["shape"]) for d in program.outputs}
        self.state_shapes = {d["name"]: tuple(d["shape"]) for d in program.states}
        self.vector_params = {d["name"]: d["shape"][0] for d in program.params if d["shape"]}
        self.scalar_params = [d["name"] for d in program.params if not d["shape"]]
        try:
            from . import torch_library
        except (ImportError, AttributeError):  # no torch, or one without torch.library.custom_op (< 2.4)
            return
        torch_library.register(self)

    @property
    def name(self):
        return self.program.name

    @property
    def ir(self):
        """The program's RIR after the pipeline."""
        return self.program.ir

    @property
    def backward_ir(self):
        """The two derived backward passes (RIR)."""
        return self.program.backward_ir

    @property
    def inputs(self):
        return list(self.input_shapes)

    @property
    def outputs(self):
        return list(self.output_shapes)

    @property
    def states(self):
        return list(self.state_shapes)

    def cuda_source(self, dims, dtype="bf16", strategy="auto", chunk=0, time=4096, pass_="forward"):
        """The CUDA C++ the runtime would compile for these dims (pass_: forward, backward_a,
        backward_b)."""
        return self.program.cuda_source(dims=dims, dtype=dtype, strategy=strategy, chunk=chunk, time=time, pass_=pass_)

    def tune(self, dims, shape, dtype="bf16", cu_seqlens=None, reps=20, record=True, database=""):
        """Tunes this program's forward for one shape on the GPU (see lina.tune)."""
        return tune(self, dims, shape, dtype=dtype, cu_seqlens=cu_seqlens, reps=reps, record=record, database=database)

    def reference(self, inputs, dims, initial_states=None, scalar_params=None, vector_params=None, cu_seqlens=None):
        """Runs the CPU reference (double precision) on numpy arrays; returns (outputs, final_states)
        as dicts of numpy arrays."""
        b, t, h = _leading_shape(inputs, self.inputs)
        return self.program.run_reference(
            batch=b, time=t, heads=h, dims=dims, inputs=inputs, initial_states=initial_states or {},
            scalar_params=scalar_params or {}, vector_params=vector_params or {},
            cu_seqlens=[] if cu_seqlens is None else [int(x) for x in cu_seqlens])

    def reference_backward(self, inputs, dims, output_grads, final_state_grads=None, initial_states=None,
                           scalar_params=None, vector_params=None, cu_seqlens=None):
        """The exact gradients of sum(d_out * out) + sum(dht * final state) on the CPU (double);
        returns (input_grads, initial_state_grads, vector_param_grads, scalar_param_grads)."""
        b, t, h = _leading_shape(inputs, self.inputs)
        return self.program.reference_backward(
            batch=b, time=t, heads=h, dims=dims, inputs=inputs, initial_states=initial_states or {},
            scalar_params=scalar_params or {}, vector_params=vector_params or {},
            cu_seqlens=[] if cu_seqlens is None else [int(x) for x in cu_seqlens], output_grads=output_grads,
            final_state_grads=final_state_grads or {})

    def forward_dlpack(self, inputs, initial_states=None, vector_params=None, scalar_params=None, cu_seqlens=None,
                       output_final_state=False, stream=0, strategy="auto", chunk=0):
        """The GPU forward on any arrays that speak DLPack (no torch needed): inputs borrowed, results
        returned as (outputs, final_states) dicts of lina.DeviceArray, queued on `stream` (a CUDA
        stream handle; 0 is the legacy default stream)."""
        from . import dlpack
        return dlpack.forward(self, inputs, initial_states, vector_params, scalar_params, cu_seqlens,
                              output_final_state, stream, strategy, chunk)

    def backward_dlpack(self, inputs, output_grads, final_state_grads=None, initial_states=None, final_states=None,
                        vector_params=None, scalar_params=None, cu_seqlens=None, stream=0, strategy="auto", chunk=0):
        """The compiler-derived backward on DLPack arrays: returns (input_grads, initial_state_grads,
        vector_param_grads) as dicts of lina.DeviceArray."""
        from . import dlpack
        return dlpack.backward(self, inputs, output_grads, final_state_grads, initial_states, final_states,
                               vector_params, scalar_params, cu_seqlens, stream, strategy, chunk)

    def __call__(self, initial_state=None, output_final_state=False, cu_seqlens=None, scalar_params=None,
                 vector_params=None, strategy="auto", chunk=0, **inputs):
        """The call on torch tensors, with autograd: lina's kernels on CUDA tensors, the reference
        interpreter on CPU tensors (float64 allowed there, for gradcheck). `initial_state`: a dict
        state -> tensor, a tuple in the program's state order, or one tensor for a one-state
        program. `vector_params`: a dict name -> [H, d] tensor (differentiable). Returns
        (outputs..., final_state or None). Registered with torch.library: torch.compile and CUDA
        graphs see one custom op."""
        from .torch_ops import run_op
        _check_strategy(strategy, chunk)
        return run_op(self, inputs, initial_state, output_final_state, cu_seqlens, scalar_params or {},
                      vector_params or {}, strategy, chunk)


STRATEGIES = ("auto", "fused", "split", "recurrent", "reference")


def _check_strategy(strategy, chunk):
    """The forward strategy and chunk of a call, checked on every device (the CPU reference
    interpreter does not use them, so a typo would otherwise pass unnoticed there)."""
    if strategy not in STRATEGIES:
        raise _lina.LinaError(f"strategy: expected one of {', '.join(STRATEGIES)}; got {strategy!r}")
    if not isinstance(chunk, int) or chunk < 0 or (chunk and (chunk & (chunk - 1) or not 16 <= chunk <= 256)):
        raise _lina.LinaError(f"chunk: expected 0 (the tuner's choice) or a power of two from 16 to 256; got {chunk!r}")


def _leading_shape(inputs, names):
    for name in names:
        if name not in inputs:
            raise _lina.LinaError(f"inputs: '{name}' is missing; the program reads {', '.join(names)}")
    first = inputs[names[0]]
    shape = getattr(first, "shape", None)
    if shape is None or len(shape) < 3:
        raise _lina.LinaError(f"inputs['{names[0]}']: expected an array [B, T, H(, d)]; got shape {shape}")
    return int(shape[0]), int(shape[1]), int(shape[2])


def compile(source_or_path, name=None):
    """An Op for a DSL program: a path to a .lina file, or the DSL text itself."""
    looks_like_path = "\n" not in source_or_path and "{" not in source_or_path
    if looks_like_path and not os.path.exists(source_or_path):
        raise _lina.LinaError(f"lina.compile: no file '{source_or_path}' (a path to a .lina file, or the DSL text itself); "
                              "check the path")
    if looks_like_path:
        with open(source_or_path, encoding="utf-8") as f:
            text = f.read()
        return Op(_lina.Program.from_file(source_or_path), _key("file", source_or_path + "\0" + text))
    name = name or "<lina.compile>"
    return Op(_lina.Program.from_source(name, source_or_path), _key("source", name + "\0" + source_or_path))


def _key(kind, text):
    return f"{kind}:{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def library(name):
    """An Op for a standard-library program: gla, simple_gla, retention, gsa."""
    return Op(_lina.Program.from_library(name), "library:" + name)


def tune(op, dims, shape, dtype="bf16", cu_seqlens=None, reps=20, record=True, database=""):
    """Tunes a program's forward schedule for one problem shape on this GPU, as `linac tune` does:
    every candidate compiled, checked against the reference on a probe problem (a candidate that
    fails is never chosen), the survivors timed with L2 flushed, the fastest recorded in the
    device's tuning database ($LINA_CACHE_DIR/tuning/), which later launches at shapes of the same
    bucket consult. `op`: an Op or a library program's name; `shape`: (B, T, H); `cu_seqlens`:
    host offsets for varlen (then B = 1). Returns a dict: bucket, best, best_ms, heuristic,
    heuristic_ms, database, candidates (label, kernels, ms, check_ratio, status) and report (a
    Markdown table)."""
    if not hasattr(_lina, "tune"):
        raise _lina.LinaError("lina.tune: this build has no tuning database (nlohmann-json was missing when it was configured); "
                              "install nlohmann-json3-dev and rebuild")
    if isinstance(op, str):
        op = library(op)
    if not isinstance(op, Op):
        raise _lina.LinaError(f"lina.tune: op: expected an Op (lina.compile / lina.library) or a library program's name; got {type(op).__name__}")
    try:
        shape = tuple(int(v) for v in shape)
    except TypeError:
        raise _lina.LinaError(f"lina.tune: shape: expected (B, T, H); got {shape!r}") from None
    offsets = [int(v) for v in cu_seqlens] if cu_seqlens is not None else []
    return _lina.tune(op.program, dict(dims), list(shape), dtype=dtype, cu_seqlens=offsets, reps=reps, record=record,
                      database=database)
