// lina::Error: a message that names the call, the expected and the actual value, and how to fix it.
// Shared by every layer (support/ sits below dsl/), so codegen needs no runtime header.
#pragma once

#include <stdexcept>
#include <string>

namespace lina {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace lina
