// Textual form of CIR (`linac --emit=cir`).
#pragma once

#include <ostream>

#include "compiler/cir/ir.h"

namespace lina::cir {

void print(std::ostream& os, const Kernel& kernel);

}  // namespace lina::cir
