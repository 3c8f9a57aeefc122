// The standard library: the .lina programs under library/ops, embedded at build time.
#pragma once

#include <string>
#include <vector>

namespace lina::library {

struct Program {
  const char* name;   // e.g. "gla"
  const char* path;   // e.g. "library/ops/gla.lina", for diagnostics
  const char* source;
};

const std::vector<Program>& programs();
// nullptr when there is no such program.
const Program* find(const std::string& name);

}  // namespace lina::library
