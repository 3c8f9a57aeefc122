// Textual form of RIR (`linac --emit=rir`); rir/parser.h reads the same text back.
#pragma once

#include <ostream>
#include <string>

#include "compiler/rir/ir.h"

namespace lina::rir {

void print(std::ostream& os, const Module& module);
void print(std::ostream& os, const Recurrence& rec);
std::string toString(const Module& module);
// The shortest decimal spelling that reads back as exactly `value`.
std::string formatNumber(double value);

}  // namespace lina::rir
