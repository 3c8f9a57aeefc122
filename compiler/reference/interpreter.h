// The reference interpreter: runs any verified RIR program forward on the CPU in double
// precision. It is the oracle for every numeric test of the compiled kernels.
//
// Layouts follow fla: per-step inputs [B, T, H] (scalars) or [B, T, H, d] (vectors); vector
// params [H, d]; states [N, H, rows, cols]; outputs like inputs. Varlen: B == 1 and
// cu_seqlens [N + 1] (non-decreasing, zero-length sequences allowed), one state per sequence.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compiler/rir/ir.h"

namespace lina::reference {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<double> data;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s);  // zero-filled
  int64_t numel() const;
};

struct Problem {
  int64_t batch = 1, time = 1, heads = 1;
  std::map<std::string, int64_t> dims;         // size of every dim of the program
  std::vector<int64_t> cuSeqlens;              // empty: fixed length, N = batch
  std::map<std::string, Tensor> inputs;
  std::map<std::string, double> scalarParams;  // overrides of scalar params
  std::map<std::string, Tensor> vectorParams;  // [H, d]
  std::map<std::string, Tensor> initialStates; // absent: zeros
};

struct Result {
  std::map<std::string, Tensor> outputs;
  std::map<std::string, Tensor> finalStates;
};

// Runs the program. On bad input returns nullopt and sets `error` to a message naming the
// argument, the expected and the actual value.
std::optional<Result> run(const rir::Recurrence& program, const Problem& problem, std::string& error);

// The number of sequences: cu_seqlens.size() - 1 in varlen mode, batch otherwise.
int64_t sequenceCount(const Problem& problem);

}  // namespace lina::reference
