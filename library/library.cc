#include "library/library.h"

namespace lina::library {

const std::vector<Program>& embeddedPrograms();  // generated: library_sources.cc

const std::vector<Program>& programs() { return embeddedPrograms(); }

const Program* find(const std::string& name) {
  for (const Program& p : programs())
    if (name == p.name) return &p;
  return nullptr;
}

}  // namespace lina::library
