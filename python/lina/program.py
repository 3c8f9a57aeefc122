"""lina.compile: an op for any DSL program, with IR/CUDA views, the CPU reference and (with torch
on a GPU) a differentiable GPU call whose backward is the compiler-derived one."""
import os

from . import _lina


class Op:
    """A compiled recurrence. Inputs are named as in the program; per-step tensors are
    [B, T, H] or [B, T, H, d]; states [N, H, rows, cols] fp32; vector params [H, d]."""

    def __init__(self, program):
        self.program = program

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
        return [d["name"] for d in self.program.inputs]

    @property
    def outputs(self):
        return [d["name"] for d in self.program.outputs]

    @property
    def states(self):
        return [d["name"] for d in self.program.states]

    def cuda_source(self, dims, dtype="bf16", strategy="auto", chunk=0, time=4096, pass_="forward"):
        """The CUDA C++ the runtime would compile for these dims (pass_: forward, backward_a,
        backward_b)."""
        return self.program.cuda_source(dims=dims, dtype=dtype, strategy=strategy, chunk=chunk, time=time, pass_=pass_)

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

    def __call__(self, initial_state=None, output_final_state=False, cu_seqlens=None, scalar_params=None,
                 vector_params=None, strategy="auto", chunk=0, **inputs):
        """The GPU call on torch tensors, with autograd. `initial_state`: a dict state -> tensor (or
        one tensor for a one-state program). Returns (outputs..., final_state or None)."""
        from .torch_ops import run_op
        return run_op(self, inputs, initial_state, output_final_state, cu_seqlens, scalar_params or {},
                      vector_params or {}, strategy, chunk)


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
    if "\n" not in source_or_path and os.path.exists(source_or_path):
        return Op(_lina.Program.from_file(source_or_path))
    return Op(_lina.Program.from_source(name or "<lina.compile>", source_or_path))


def library(name):
    """An Op for a standard-library program: gla, simple_gla, retention, gsa."""
    return Op(_lina.Program.from_library(name))
