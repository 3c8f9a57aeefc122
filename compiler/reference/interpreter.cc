#include "compiler/reference/interpreter.h"

#include "compiler/reference/evaluator.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace lina::reference {

Tensor::Tensor(std::vector<int64_t> s) : shape(std::move(s)) { data.assign(static_cast<size_t>(numel()), 0.0); }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t sequenceCount(const Problem& problem) {
  return problem.cuSeqlens.empty() ? problem.batch : static_cast<int64_t>(problem.cuSeqlens.size()) - 1;
}


std::optional<Result> run(const rir::Recurrence& program, const Problem& problem, std::string& error) {
  return detail::Interpreter(program, problem).run(error);
}

}  // namespace lina::reference
