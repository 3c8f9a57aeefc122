// The exception type of the runtime: a message that names the call, the expected and the actual
// value, and how to fix it.
#pragma once

#include <stdexcept>
#include <string>

namespace lina {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace lina
