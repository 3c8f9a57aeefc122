// The compiler pipeline: every stage from source text to emitted kernels, in one ordered list
// (pipeline.cc, pipelineStages). lina::Program (runtime/), linac and the tests make kernels only
// through compileToRir / deriveBackwardModule / lowerToKernels / compileKernels, so a request
// gives the same kernels wherever it is made.
//
//   source --parse--> AST --sema--> checked AST --lower-ast-to-rir--> RIR
//          --infer-state-shapes, canonicalize-gates, fold-constants, dce--> canonical RIR
//          [--derive-backward--> the two backward passes, each canonical RIR]
//          --lower-rir-to-cir--> CIR kernel --split-phase--> the split strategy's two kernels
//          --specialize--> CIR + dims, dtype, tile, warps, stages, layout
//          --plan-launch--> shared-memory plan and launch grid --emit-cuda--> CUDA C++
//   or, for a register-tile request (fused, chunk 64, bf16, one state):
//          canonical RIR + specialization --lower-to-kir--> KIR --emit-cuda--> CUDA C++
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "codegen/cuda/emit_cuda.h"
#include "compiler/cir/ir.h"
#include "compiler/kir/register_tiles.h"
#include "compiler/passes/derive_backward.h"
#include "compiler/rir/ir.h"
#include "dsl/ast.h"
#include "dsl/diagnostics.h"

namespace lina {

struct PipelineOptions {
  // `all`, a stage name, or empty: print the IR after that stage (RIR stages with "(unchanged)"
  // when they changed nothing; CIR stages the kernels; emit-cuda the source).
  std::string printAfter;
  std::ostream* printStream = nullptr;
  // Stop after this RIR pass (used by `linac --pass=`); empty runs the whole pipeline.
  std::string stopAfter;
  // Print the time each stage took to `printStream`.
  bool timePasses = false;
};

// One stage of the pipeline, in order: its flag name, the level it produces, what it does.
struct StageInfo {
  const char* name;
  const char* level;  // ast, rir, cir, kir, cuda
  const char* summary;
};
const std::vector<StageInfo>& pipelineStages();
const StageInfo* findStage(const std::string& name);

// The names of the RIR stage's passes, in the order runRirPipeline runs them.
std::vector<std::string> rirPipelineOrder();

// Runs the RIR passes over `module`, verifying after each. Returns false after reporting errors.
bool runRirPipeline(rir::Module& module, DiagnosticEngine& diags, const PipelineOptions& options = {});

// Runs only `pass` (a catalog name) and the verifier.
bool runSinglePass(rir::Module& module, const std::string& pass, DiagnosticEngine& diags);

// Parses, checks and lowers buffer `file`, then runs the RIR pipeline. `ast` (optional) receives
// the checked AST.
std::optional<rir::Module> compileToRir(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags,
                                        const PipelineOptions& options = {}, ast::File* ast = nullptr);

// Parses, checks and lowers only (the RIR before any pass).
std::optional<rir::Module> lowerToRir(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags,
                                      ast::File* ast = nullptr);

// derive-backward: each recurrence of `module` replaced by its two backward passes (pass A, then
// pass B), verified. `derived` (optional) receives each forward's DerivedBackward, signature
// included.
std::optional<rir::Module> deriveBackwardModule(const rir::Module& module, DiagnosticEngine& diags,
                                                const PipelineOptions& options = {},
                                                std::vector<passes::DerivedBackward>* derived = nullptr);

// What kernels to make of one canonical recurrence: the schedule and the specialization.
struct KernelRequest {
  cir::Strategy strategy = cir::Strategy::Fused;
  int chunk = 64;  // ignored by Recurrent (1)
  int warps = 0;   // per CTA; 0: the kernel's default (cir::Kernel::warps)
  int tile = 0;    // size of the tiled dim per CTA; 0: the whole dim
  int stages = 1;  // 2: prefetch the next chunk's inputs (cp.async)
  std::map<std::string, int64_t> dims;
  std::string dtype = "bf16";
  cir::TensorLayout layout;
  // Cut the kernels across this dim instead of cir::tileableDim (the derived backward's blocked
  // passes: a separable dim of the forward that the passes contract); empty: the default.
  std::string tiledDimOverride;
  std::string sourceName;  // the .lina file named in #line directives; empty: none
  // The kernel level: register tiles (KIR, tensor-core fragments; fused, chunk 64, bf16, the
  // single-state family) instead of the CIR kernels' shared-memory (SIMT) path.
  bool registerTiles = false;
  cir::Specialization specialization() const;
};

// lower-rir-to-cir, split-phase and specialize: the request's CIR kernels in launch order (one,
// or the split strategy's walk and outputs). Throws lina::Error with the diagnostics when the
// program cannot take the strategy.
std::vector<cir::Kernel> lowerToKernels(const rir::Recurrence& recurrence, const KernelRequest& request,
                                        const PipelineOptions& options = {});

// lower-to-kir: the register-tile kernel of a registerTiles request. Throws lina::Error with the
// reason when the program or the request is outside the kernel level's family.
std::vector<kir::RegisterTileKernel> lowerToKir(const rir::Recurrence& recurrence, const KernelRequest& request,
                                   const PipelineOptions& options = {});

// The whole kernel stage (a registerTiles request: lowerToKir, then emit-cuda): lowerToKernels, then plan-launch and emit-cuda. Each kernel carries its
// source, grid, block, shared memory and parameter order. Throws lina::Error for a request that
// does not fit the program (a dim missing, a tile not dividing it, a layout naming no tensor).
std::vector<codegen::EmittedKernel> compileKernels(const rir::Recurrence& recurrence, const KernelRequest& request,
                                                   const PipelineOptions& options = {});

// Prints a kernel with its specialization and launch plan as `//` attribute lines (the CIR
// parser skips them, so the printed kernel still parses).
void printSpecializedKernel(std::ostream& os, const cir::Kernel& kernel, const cir::Specialization& spec,
                            const codegen::EmittedKernel* emitted = nullptr);

}  // namespace lina
