// Uniform RIR values (params, dims, the head index and arithmetic over them) as C++ double
// expressions over `p` (KernelParams), `h` and `H` for the register-tile policies, and as text
// for the KIR listing. Also the matching and planning helpers the
// single-state and two-phase lowerings share. Internal to compiler/kir.
#pragma once

#include <cstdio>
#include <string>
#include <utility>

#include "compiler/cir/ir.h"
#include "compiler/kir/register_tiles.h"
#include "compiler/rir/ir.h"

namespace lina::kir::detail {

inline std::string number(double x) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", x);
  std::string s = b;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

// A uniform RIR value as a C++ double expression (code) and as text for the listing.
struct UniformTranslator {
  const rir::Recurrence& rec;
  const cir::Specialization& spec;

  int scalarParamIndex(const std::string& name) const {
    int i = 0;
    for (const rir::Decl& p : rec.params) {
      if (p.name == name) return i;
      if (p.shape.empty()) ++i;
    }
    return -1;
  }

  // Throws a reason string (std::string) for a value that is not uniform.
  std::pair<std::string, std::string> operator()(const std::string& value) const {
    const rir::Inst* d = rec.definition(value);
    if (!d) throw std::string("%" + value + " has no definition");
    auto un = [&](const char* f) {
      auto [c, t] = (*this)(d->operands.at(0));
      return std::pair{std::string(f) + "(" + c + ")", std::string(f) + "(" + t + ")"};
    };
    auto bin = [&](const char* op) {
      auto [a, at] = (*this)(d->operands.at(0));
      auto [b, bt] = (*this)(d->operands.at(1));
      return std::pair{"(" + a + " " + op + " " + b + ")", "(" + at + " " + op + " " + bt + ")"};
    };
    switch (d->op) {
      case rir::Op::Const: return {number(d->number), number(d->number)};
      case rir::Op::Dim: {
        auto it = spec.dims.find(d->symbol);
        if (it == spec.dims.end()) throw std::string("dim " + d->symbol + " has no size in the request");
        return {number(static_cast<double>(it->second)), "dim " + d->symbol};
      }
      case rir::Op::Head: return {"static_cast<double>(h)", "head"};
      case rir::Op::Param: {
        const rir::Decl* p = rec.param(d->symbol);
        if (!p || !p->shape.empty()) throw std::string("param " + d->symbol + " is not a scalar");
        const int i = scalarParamIndex(d->symbol);
        std::string fallback = "0.0", fallbackText;
        if (!d->operands.empty()) std::tie(fallback, fallbackText) = (*this)(d->operands[0]);
        return {"(p.scalarParamSet[" + std::to_string(i) + "] ? static_cast<double>(p.scalarParams[" + std::to_string(i) +
                    "]) : " + fallback + ")",
                "param " + d->symbol + (fallbackText.empty() ? "" : " default " + fallbackText)};
      }
      case rir::Op::Neg: {
        auto [c, t] = (*this)(d->operands.at(0));
        return {"(-" + c + ")", "(-" + t + ")"};
      }
      case rir::Op::Add: return bin("+");
      case rir::Op::Sub: return bin("-");
      case rir::Op::Mul: return bin("*");
      case rir::Op::Div: return bin("/");
      case rir::Op::Pow: {
        auto [a, at] = (*this)(d->operands.at(0));
        auto [b, bt] = (*this)(d->operands.at(1));
        return {"pow(" + a + ", " + b + ")", "pow(" + at + ", " + bt + ")"};
      }
      case rir::Op::Exp: return un("exp");
      case rir::Op::Log: return un("log");
      default: throw std::string("%" + value + " (" + rir::opName(d->op) + ") is not a uniform scalar");
    }
  }
};

// The KernelParams slot of input `value` when it is an input of `shape` (its name to `name`),
// else -1.
int inputSlot(const rir::Recurrence& rec, const std::string& value, const rir::Shape& shape, std::string& name);

// A row gate of the register-tile family (an input g[rowDim] or g[], or a uniform decay) into
// k.gate / k.slotG / k.logDecay*; the reason when it is none of them.
std::string matchRowGate(const rir::Recurrence& rec, const cir::Specialization& spec, const rir::Gate& rows, RegisterTileKernel& k);

// The row-gated kernel's plan for one part: name, warps, shared-memory buffers, blocks per SM.
RegisterTileKernel planKernel(RegisterTileKernel k, Part part);

// The column-gated kernel's plan (two_phase.cc): phase 0 of a two-phase plan, or -1 for a
// single-state program whose gate acts on the state's columns (64 columns per CTA).
RegisterTileKernel planColumnGated(RegisterTileKernel k, int phase);

}  // namespace lina::kir::detail
