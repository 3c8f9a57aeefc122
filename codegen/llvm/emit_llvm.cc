#include "codegen/llvm/emit_llvm.h"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include <functional>
#include <set>

#include "codegen/llvm/loop_builder.h"
#include "support/error.h"

namespace lina::codegen {

namespace {

using llvm::Value;

class Emitter : LoopBuilder {
 public:
  Emitter(const cir::Kernel& k, const std::map<std::string, int64_t>& dims, llvm::LLVMContext& ctx, LlvmKernelLayout& layout)
      : LoopBuilder(ctx), k_(k), dims_(dims), layout_(layout) {}

  std::unique_ptr<llvm::Module> run() {
    if (k_.phase != cir::Phase::Whole)
      throw Error("kernel " + k_.name + ": the LLVM backend runs whole kernels (fused or recurrent), not a phase of the split strategy");
    for (const std::string& d : k_.dims)
      if (!dims_.count(d)) throw Error("kernel " + k_.name + ": dim '" + d + "' has no size");
    auto module = std::make_unique<llvm::Module>(k_.name, ctx_);
    m_ = module.get();
    layout_.function = k_.name;
    planWorkspace();
    auto* fnType = llvm::FunctionType::get(b_.getVoidTy(), {b_.getInt8PtrTy()->getPointerTo()}, false);
    fn_ = llvm::Function::Create(fnType, llvm::Function::ExternalLinkage, k_.name, m_);
    fn_->addFnAttr(llvm::Attribute::NoUnwind);
    entry_ = llvm::BasicBlock::Create(ctx_, "entry", fn_);
    b_.SetInsertPoint(entry_);
    loadArguments(fn_->getArg(0));
    forRange(itemBegin_, itemEnd_, [&](Value* item) { emitItem(item); });
    b_.CreateRetVoid();
    std::string error;
    llvm::raw_string_ostream os(error);
    if (llvm::verifyFunction(*fn_, &os)) throw Error("LLVM backend: kernel " + k_.name + " did not verify: " + os.str());
    return module;
  }

 private:
  int64_t size(const std::string& d) const { return dims_.at(d); }
  int64_t ext(const rir::Shape& s) const { return s.empty() ? 1 : size(s[0]); }

  // --- the workspace: every buffer at a constant offset ---------------------------------------
  int64_t allocate(const std::string& name, int64_t floats) {
    offset_[name] = layout_.workspaceFloats;
    layout_.workspaceFloats += floats;
    return offset_[name];
  }
  void planWorkspace() {
    const int64_t C = k_.chunk;
    for (const rir::Decl& s : k_.states) {
      allocate("state:" + s.name, size(s.shape[0]) * size(s.shape[1]));
      layout_.stateNames.push_back(s.name);
      layout_.stateRows.push_back(size(s.shape[0]));
      layout_.stateCols.push_back(size(s.shape[1]));
    }
    for (const cir::Op& op : k_.ops) {
      if (op.kind == cir::OpKind::Uniform) {
        uniform_.insert(op.result);
        width_[op.result] = ext(op.shape);
        allocate(op.result, ext(op.shape));
      } else if (!op.result.empty()) {
        width_[op.result] = ext(op.shape);
        allocate(op.result, C * ext(op.shape));
        if (op.kind == cir::OpKind::GateCumsum && !op.exclusive.empty()) {
          width_[op.exclusive] = ext(op.shape);
          allocate(op.exclusive, C * ext(op.shape));
        }
        if (op.kind == cir::OpKind::RunningSum) allocate("carry:" + op.result, ext(op.shape));
        if (op.kind == cir::OpKind::Attend) allocate("score:" + op.result, C * C);
      }
    }
    for (const rir::Decl& in : k_.inputs) {
      layout_.inputNames.push_back(in.name);
      layout_.inputWidths.push_back(ext(in.shape));
    }
    for (const rir::Decl& o : k_.outputs) {
      layout_.outputNames.push_back(o.name);
      layout_.outputWidths.push_back(ext(o.shape));
    }
    for (const rir::Decl& p : k_.params) {
      if (p.shape.empty()) {
        layout_.scalarParamNames.push_back(p.name);
      } else {
        layout_.vectorParamNames.push_back(p.name);
        layout_.vectorParamWidths.push_back(ext(p.shape));
      }
    }
    layout_.inputs = static_cast<int>(k_.inputs.size());
    layout_.outputs = static_cast<int>(k_.outputs.size());
    layout_.states = static_cast<int>(k_.states.size());
    layout_.vectorParams = static_cast<int>(layout_.vectorParamNames.size());
    layout_.scalarParams = static_cast<int>(layout_.scalarParamNames.size());
  }

  Value* ws(const std::string& name, Value* index) { return at(ws_, b_.CreateAdd(i64(offset_.at(name)), index)); }
  Value* wsLoad(const std::string& name, Value* index) { return b_.CreateLoad(f32_, ws(name, index)); }
  void wsStore(Value* v, const std::string& name, Value* index) { b_.CreateStore(v, ws(name, index)); }

  // The value of operand `name` at step t, entry e (broadcasting scalars and per-head values).
  Value* value(const std::string& name, Value* t, Value* e) {
    const int64_t w = width_.at(name);
    if (uniform_.count(name)) return wsLoad(name, w == 1 ? i64(0) : e);
    return wsLoad(name, w == 1 ? t : b_.CreateAdd(b_.CreateMul(t, i64(w)), e));
  }
  // A gate's chunk-local cumulative log decay at (t, i); nullptr without a gate.
  Value* gate(const cir::GateRef& g, const std::string& which, Value* t, Value* i) {
    if (g.kind == cir::GateKind::None) return nullptr;
    if (g.kind == cir::GateKind::Scalar) return wsLoad(which, t);
    return wsLoad(which, b_.CreateAdd(b_.CreateMul(t, i64(width_.at(which))), i));
  }
  Value* expOf(Value* x) { return b_.CreateCall(llvm::Intrinsic::getDeclaration(m_, llvm::Intrinsic::exp, {f32_}), {x}); }
  Value* decay(Value* g) { return g ? expOf(g) : f32(1.0); }
  Value* decay(Value* g, Value* minus) {
    if (!g) return f32(1.0);
    return expOf(b_.CreateFSub(g, minus));
  }

  Value* elementwise(rir::Op op, Value* a, Value* c) {
    auto intrinsic = [&](llvm::Intrinsic::ID id, std::vector<Value*> args) {
      return b_.CreateCall(llvm::Intrinsic::getDeclaration(m_, id, {f32_}), args);
    };
    switch (op) {
      case rir::Op::Neg: return b_.CreateFNeg(a);
      case rir::Op::Add: return b_.CreateFAdd(a, c);
      case rir::Op::Sub: return b_.CreateFSub(a, c);
      case rir::Op::Mul: return b_.CreateFMul(a, c);
      case rir::Op::Div: return b_.CreateFDiv(a, c);
      case rir::Op::Pow: return intrinsic(llvm::Intrinsic::pow, {a, c});
      case rir::Op::Exp: return intrinsic(llvm::Intrinsic::exp, {a});
      case rir::Op::Log: return intrinsic(llvm::Intrinsic::log, {a});
      default: throw Error(std::string("LLVM backend: '") + rir::opName(op) + "' is not an elementwise op");
    }
  }

  // --- arguments -------------------------------------------------------------------------------
  void loadArguments(Value* args) {
    int next = 0;
    auto arg = [&](llvm::Type* type) {
      Value* raw = b_.CreateLoad(b_.getInt8PtrTy(), b_.CreateGEP(b_.getInt8PtrTy(), args, i64(next++)));
      return b_.CreateBitCast(raw, type);
    };
    Value* shape = arg(i64_->getPointerTo());
    auto shapeAt = [&](int i) { return b_.CreateLoad(i64_, b_.CreateGEP(i64_, shape, i64(i))); };
    T_ = shapeAt(1);
    H_ = shapeAt(2);
    itemBegin_ = shapeAt(3);
    itemEnd_ = shapeAt(4);
    cu_ = arg(i64_->getPointerTo());
    ws_ = arg(f32_->getPointerTo());
    for (const rir::Decl& in : k_.inputs) ptr_["in:" + in.name] = arg(f32_->getPointerTo());
    for (const rir::Decl& o : k_.outputs) ptr_["out:" + o.name] = arg(f32_->getPointerTo());
    for (const rir::Decl& s : k_.states) {
      ptr_["init:" + s.name] = arg(f32_->getPointerTo());
      ptr_["final:" + s.name] = arg(f32_->getPointerTo());
    }
    for (const std::string& p : layout_.vectorParamNames) ptr_["vparam:" + p] = arg(f32_->getPointerTo());
    scalarValues_ = arg(f32_->getPointerTo());
    scalarGiven_ = arg(b_.getInt8PtrTy());
  }

  // --- one (sequence, head) item ---------------------------------------------------------------
  void emitItem(Value* item) {
    Value* seq = b_.CreateSDiv(item, H_);
    head_ = b_.CreateSRem(item, H_);
    Value* varlen = b_.CreateICmpNE(cu_, llvm::ConstantPointerNull::get(llvm::cast<llvm::PointerType>(cu_->getType())));
    Value* cuSeq = b_.CreateSelect(varlen, cu_, b_.CreateBitCast(ws_, cu_->getType()));  // a safe address when fixed length
    Value* bosVarlen = b_.CreateLoad(i64_, b_.CreateGEP(i64_, cuSeq, seq));
    Value* eosVarlen = b_.CreateLoad(i64_, b_.CreateGEP(i64_, cuSeq, b_.CreateAdd(seq, i64(1))));
    batch_ = b_.CreateSelect(varlen, i64(0), seq);
    Value* bos = b_.CreateSelect(varlen, bosVarlen, i64(0));
    Value* len = b_.CreateSelect(varlen, b_.CreateSub(eosVarlen, bosVarlen), T_);
    Value* stateRow = b_.CreateAdd(b_.CreateMul(seq, H_), head_);
    for (size_t s = 0; s < k_.states.size(); ++s) {
      const std::string& name = k_.states[s].name;
      const int64_t RC = layout_.stateRows[s] * layout_.stateCols[s];
      Value* init = ptr_.at("init:" + name);
      Value* base = b_.CreateMul(stateRow, i64(RC));
      ifThenElse(
          b_.CreateICmpNE(init, llvm::ConstantPointerNull::get(llvm::cast<llvm::PointerType>(init->getType()))),
          [&] { forRange(i64(0), i64(RC), [&](Value* i) { wsStore(load(init, b_.CreateAdd(base, i)), "state:" + name, i); }); },
          [&] { forRange(i64(0), i64(RC), [&](Value* i) { wsStore(f32(0.0), "state:" + name, i); }); });
    }
    for (const cir::Op& op : k_.ops) {
      if (op.kind == cir::OpKind::Uniform) emitUniform(op);
      if (op.kind == cir::OpKind::RunningSum)
        forRange(i64(0), i64(width_.at(op.result)), [&](Value* e) { wsStore(f32(0.0), "carry:" + op.result, e); });
    }
    const int64_t C = k_.chunk;
    Value* chunks = b_.CreateSDiv(b_.CreateAdd(len, i64(C - 1)), i64(C));
    forRange(i64(0), chunks, [&](Value* ci) {
      Value* c0 = b_.CreateMul(ci, i64(C));
      Value* rest = b_.CreateSub(len, c0);
      L_ = b_.CreateSelect(b_.CreateICmpSLT(rest, i64(C)), rest, i64(C));
      tok0_ = b_.CreateAdd(bos, c0);
      firstChunk_ = b_.CreateICmpEQ(ci, i64(0));
      for (const cir::Op& op : k_.ops) emitChunkOp(op);
    });
    for (size_t s = 0; s < k_.states.size(); ++s) {
      const std::string& name = k_.states[s].name;
      const int64_t RC = layout_.stateRows[s] * layout_.stateCols[s];
      Value* out = ptr_.at("final:" + name);
      Value* base = b_.CreateMul(stateRow, i64(RC));
      forRange(i64(0), i64(RC), [&](Value* i) { store(wsLoad("state:" + name, i), out, b_.CreateAdd(base, i)); });
    }
  }

  void emitUniform(const cir::Op& op) {
    const int64_t E = width_.at(op.result);
    auto arg = [&](size_t i, Value* e) { return value(op.operands[i], i64(0), e); };
    switch (op.rop) {
      case rir::Op::Const: wsStore(f32(op.number), op.result, i64(0)); return;
      case rir::Op::Dim: wsStore(f32(static_cast<double>(size(op.symbol))), op.result, i64(0)); return;
      case rir::Op::Head: wsStore(b_.CreateSIToFP(head_, f32_), op.result, i64(0)); return;
      case rir::Op::Param: {
        if (!op.shape.empty()) {
          Value* v = ptr_.at("vparam:" + op.symbol);
          forRange(i64(0), i64(E), [&](Value* e) { wsStore(load(v, b_.CreateAdd(b_.CreateMul(head_, i64(E)), e)), op.result, e); });
          return;
        }
        int index = 0;
        while (layout_.scalarParamNames[static_cast<size_t>(index)] != op.symbol) ++index;
        Value* given = b_.CreateLoad(b_.getInt8Ty(), b_.CreateGEP(b_.getInt8Ty(), scalarGiven_, i64(index)));
        Value* fallback = op.operands.empty() ? f32(0.0) : value(op.operands[0], i64(0), i64(0));
        Value* v = b_.CreateSelect(b_.CreateICmpNE(given, b_.getInt8(0)), load(scalarValues_, i64(index)), fallback);
        wsStore(v, op.result, i64(0));
        return;
      }
      case rir::Op::Sum:
      case rir::Op::Dot: {
        const int64_t D = width_.at(op.operands[0]);
        Value* acc = slot();
        b_.CreateStore(f32(0.0), acc);
        forRange(i64(0), i64(D), [&](Value* e) {
          Value* term = op.rop == rir::Op::Dot ? b_.CreateFMul(arg(0, e), arg(1, e)) : arg(0, e);
          b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f32_, acc), term), acc);
        });
        wsStore(b_.CreateLoad(f32_, acc), op.result, i64(0));
        return;
      }
      case rir::Op::Softmax: softmax(E, [&](Value* e) { return arg(0, e); }, op.result, [](Value* e) { return e; }); return;
      default:
        forRange(i64(0), i64(E), [&](Value* e) {
          wsStore(elementwise(op.rop, arg(0, e), op.operands.size() > 1 ? arg(1, e) : f32(0.0)), op.result, e);
        });
    }
  }

  // Softmax over D entries of `in`, into workspace buffer `name` at index(d).
  void softmax(int64_t D, const std::function<Value*(Value*)>& in, const std::string& name,
               const std::function<Value*(Value*)>& index) {
    Value* m = slot();
    b_.CreateStore(f32(-INFINITY), m);
    forRange(i64(0), i64(D), [&](Value* d) {
      Value* x = in(d);
      Value* cur = b_.CreateLoad(f32_, m);
      b_.CreateStore(b_.CreateSelect(b_.CreateFCmpOGT(x, cur), x, cur), m);
    });
    Value* s = slot();
    b_.CreateStore(f32(0.0), s);
    Value* mx = b_.CreateLoad(f32_, m);
    forRange(i64(0), i64(D), [&](Value* d) {
      Value* e = expOf(b_.CreateFSub(in(d), mx));
      wsStore(e, name, index(d));
      b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f32_, s), e), s);
    });
    Value* total = b_.CreateLoad(f32_, s);
    forRange(i64(0), i64(D), [&](Value* d) { wsStore(b_.CreateFDiv(wsLoad(name, index(d)), total), name, index(d)); });
  }

  // --- per-chunk ops ---------------------------------------------------------------------------
  Value* inputIndex(Value* t, int64_t E, Value* e) {
    // ((b * T + tok0 + t) * H + h) * E + e
    Value* row = b_.CreateAdd(b_.CreateMul(b_.CreateAdd(b_.CreateAdd(b_.CreateMul(batch_, T_), tok0_), t), H_), head_);
    return b_.CreateAdd(b_.CreateMul(row, i64(E)), e);
  }

  void emitChunkOp(const cir::Op& op) {
    const int64_t C = k_.chunk;
    const int64_t E = op.result.empty() ? 1 : width_.at(op.result);
    auto bufIndex = [&](Value* t, Value* e) { return b_.CreateAdd(b_.CreateMul(t, i64(E)), e); };
    switch (op.kind) {
      case cir::OpKind::Uniform: return;
      case cir::OpKind::Load: {
        Value* in = ptr_.at("in:" + op.symbol);
        forRange(i64(0), L_, [&](Value* t) {
          forRange(i64(0), i64(E), [&](Value* e) { wsStore(load(in, inputIndex(t, E, e)), op.result, bufIndex(t, e)); });
        });
        forRange(L_, i64(C), [&](Value* t) {
          forRange(i64(0), i64(E), [&](Value* e) { wsStore(f32(0.0), op.result, bufIndex(t, e)); });
        });
        return;
      }
      case cir::OpKind::Elementwise:
        forRange(i64(0), i64(C), [&](Value* t) {
          forRange(i64(0), i64(E), [&](Value* e) {
            Value* a = value(op.operands[0], t, e);
            Value* c = op.operands.size() > 1 ? value(op.operands[1], t, e) : f32(0.0);
            wsStore(elementwise(op.rop, a, c), op.result, bufIndex(t, e));
          });
        });
        return;
      case cir::OpKind::Reduce: {
        const int64_t D = size(op.dim);
        forRange(i64(0), i64(C), [&](Value* t) {
          if (op.rop == rir::Op::Softmax) {
            softmax(D, [&](Value* d) { return value(op.operands[0], t, d); }, op.result,
                    [&](Value* d) { return b_.CreateAdd(b_.CreateMul(t, i64(D)), d); });
            return;
          }
          Value* acc = slot();
          b_.CreateStore(f32(0.0), acc);
          forRange(i64(0), i64(D), [&](Value* d) {
            Value* term = value(op.operands[0], t, d);
            if (op.rop == rir::Op::Dot) term = b_.CreateFMul(term, value(op.operands[1], t, d));
            b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f32_, acc), term), acc);
          });
          wsStore(b_.CreateLoad(f32_, acc), op.result, t);
        });
        return;
      }
      case cir::OpKind::GateCumsum:
        forRange(i64(0), i64(E), [&](Value* e) {
          Value* running = slot();
          b_.CreateStore(f32(0.0), running);
          forRange(i64(0), i64(C), [&](Value* t) {
            if (!op.exclusive.empty()) wsStore(b_.CreateLoad(f32_, running), op.exclusive, bufIndex(t, e));
            ifThenElse(
                b_.CreateICmpSLT(t, L_),
                [&] { b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f32_, running), value(op.operands[0], t, e)), running); },
                [] {});
            wsStore(b_.CreateLoad(f32_, running), op.result, bufIndex(t, e));
          });
        });
        return;
      case cir::OpKind::RunningSum: {
        const std::string acc = "carry:" + op.result;
        if (op.operands.size() > 1)
          ifThenElse(
              firstChunk_,
              [&] { forRange(i64(0), i64(E), [&](Value* e) { wsStore(value(op.operands[1], i64(0), e), acc, e); }); }, [] {});
        forRange(i64(0), i64(E), [&](Value* e) {
          forRange(i64(0), i64(C), [&](Value* t) {
            ifThenElse(
                b_.CreateICmpSLT(t, L_),
                [&] {
                  Value* add = value(op.operands[0], t, e);
                  if (op.operands.size() > 2) add = b_.CreateFAdd(add, value(op.operands[2], t, e));
                  wsStore(b_.CreateFAdd(wsLoad(acc, e), add), acc, e);
                },
                [] {});
            wsStore(wsLoad(acc, e), op.result, bufIndex(t, e));
          });
        });
        return;
      }
      case cir::OpKind::Attend: emitAttend(op); return;
      case cir::OpKind::Carry: emitCarry(op); return;
      case cir::OpKind::Store: {
        const int64_t W = width_.at(op.operands[0]);
        Value* out = ptr_.at("out:" + op.symbol);
        forRange(i64(0), L_, [&](Value* t) {
          forRange(i64(0), i64(W), [&](Value* e) { store(value(op.operands[0], t, e), out, inputIndex(t, W, e)); });
        });
        return;
      }
    }
  }

  const rir::Decl& state(const std::string& name) const {
    for (const rir::Decl& s : k_.states)
      if (s.name == name) return s;
    throw Error("kernel " + k_.name + ": no state '" + name + "'");
  }

  // out[t][n] = sum_r x(t, r) decay_r(t, r) S(r, n) decay_n(t, n)
  //           + sum_{s <= t (or < t)} score(t, s) val(s, n) decay_n(t, n) / decay_n(s, n),
  // score(t, s) = sum_r x(t, r) key(s, r) decay_r(t, r) / decay_r(s, r), computed once per chunk.
  // The innermost loops run along contiguous memory (the state's rows, the value rows), so the
  // optimiser vectorises them.
  void emitAttend(const cir::Op& op) {
    const rir::Decl& s = state(op.symbol);
    const bool overRows = op.dim == s.shape[0];
    const int64_t rows = size(s.shape[0]), cols = size(s.shape[1]);
    const int64_t R = overRows ? rows : cols, N = overRows ? cols : rows, C = k_.chunk;
    const cir::GateRef& rg = overRows ? op.rows : op.cols;
    const cir::GateRef& ng = overRows ? op.cols : op.rows;
    const std::string& key = overRows ? op.u : op.w;
    const std::string& val = overRows ? op.w : op.u;
    auto q = [&](const cir::GateRef& g) { return op.afterUpdate ? g.inclusive : g.exclusive; };
    const std::string S = "state:" + op.symbol, score = "score:" + op.result;
    auto Sat = [&](Value* r, Value* n) {
      return overRows ? wsLoad(S, b_.CreateAdd(b_.CreateMul(r, i64(cols)), n)) : wsLoad(S, b_.CreateAdd(b_.CreateMul(n, i64(cols)), r));
    };
    auto outIndex = [&](Value* t, Value* n) { return b_.CreateAdd(b_.CreateMul(t, i64(N)), n); };
    const std::string& x = op.operands[0];
    forRange(i64(0), L_, [&](Value* t) {
      Value* last = op.afterUpdate ? b_.CreateAdd(t, i64(1)) : t;  // s < last
      forRange(i64(0), last, [&](Value* sIdx) {
        Value* acc = slot();
        b_.CreateStore(f32(0.0), acc);
        forRange(i64(0), i64(R), [&](Value* r) {
          Value* g = gate(rg, q(rg), t, r);
          Value* term = b_.CreateFMul(value(x, t, r), value(key, sIdx, r));
          if (g) term = b_.CreateFMul(term, decay(g, gate(rg, rg.inclusive, sIdx, r)));
          b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f32_, acc), term), acc);
        });
        wsStore(b_.CreateLoad(f32_, acc), score, b_.CreateAdd(b_.CreateMul(t, i64(C)), sIdx));
      });
      // The inter-chunk part, x^T S (or S x).
      if (overRows) {  // rows of S contiguous: r outer, n inner
        forRange(i64(0), i64(N), [&](Value* n) { wsStore(f32(0.0), op.result, outIndex(t, n)); });
        forRange(i64(0), i64(R), [&](Value* r) {
          Value* a = b_.CreateFMul(value(x, t, r), decay(gate(rg, q(rg), t, r)));
          forRange(i64(0), i64(N), [&](Value* n) {
            wsStore(b_.CreateFAdd(wsLoad(op.result, outIndex(t, n)), b_.CreateFMul(a, Sat(r, n))), op.result, outIndex(t, n));
          });
        });
      } else {  // the contracted dim is contiguous: n outer, r inner
        forRange(i64(0), i64(N), [&](Value* n) {
          Value* acc = slot();
          b_.CreateStore(f32(0.0), acc);
          forRange(i64(0), i64(R), [&](Value* r) {
            Value* term = b_.CreateFMul(b_.CreateFMul(value(x, t, r), decay(gate(rg, q(rg), t, r))), Sat(r, n));
            b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f32_, acc), term), acc);
          });
          wsStore(b_.CreateLoad(f32_, acc), op.result, outIndex(t, n));
        });
      }
      if (ng.kind != cir::GateKind::None)
        forRange(i64(0), i64(N), [&](Value* n) {
          wsStore(b_.CreateFMul(wsLoad(op.result, outIndex(t, n)), decay(gate(ng, q(ng), t, n))), op.result, outIndex(t, n));
        });
      // The intra-chunk part: s outer, n inner (value rows contiguous).
      forRange(i64(0), last, [&](Value* sIdx) {
        Value* sc = wsLoad(score, b_.CreateAdd(b_.CreateMul(t, i64(C)), sIdx));
        forRange(i64(0), i64(N), [&](Value* n) {
          Value* term = b_.CreateFMul(sc, value(val, sIdx, n));
          Value* gn = gate(ng, q(ng), t, n);
          if (gn) term = b_.CreateFMul(term, decay(gn, gate(ng, ng.inclusive, sIdx, n)));
          wsStore(b_.CreateFAdd(wsLoad(op.result, outIndex(t, n)), term), op.result, outIndex(t, n));
        });
      });
    });
    forRange(L_, i64(C), [&](Value* t) {
      forRange(i64(0), i64(N), [&](Value* n) { wsStore(f32(0.0), op.result, outIndex(t, n)); });
    });
  }

  // S(r, c) = decay_r(L-1, r) decay_c(L-1, c) S(r, c)
  //         + sum_t u(t, r) w(t, c) decay_r(L-1, r) / decay_r(t, r) decay_c(L-1, c) / decay_c(t, c),
  // with c innermost (a state row is contiguous).
  void emitCarry(const cir::Op& op) {
    const rir::Decl& s = state(op.symbol);
    const int64_t rows = size(s.shape[0]), cols = size(s.shape[1]);
    const std::string S = "state:" + op.symbol;
    Value* last = b_.CreateSub(L_, i64(1));
    auto at = [&](Value* r, Value* c) { return b_.CreateAdd(b_.CreateMul(r, i64(cols)), c); };
    forRange(i64(0), i64(rows), [&](Value* r) {
      Value* gr = gate(op.rows, op.rows.inclusive, last, r);
      forRange(i64(0), i64(cols), [&](Value* c) {
        Value* gc = gate(op.cols, op.cols.inclusive, last, c);
        Value* g = gr && gc ? b_.CreateFAdd(gr, gc) : gr ? gr : gc;
        wsStore(b_.CreateFMul(decay(g), wsLoad(S, at(r, c))), S, at(r, c));
      });
      forRange(i64(0), L_, [&](Value* t) {
        Value* coef = value(op.u, t, r);
        if (gr) coef = b_.CreateFMul(coef, decay(gr, gate(op.rows, op.rows.inclusive, t, r)));
        forRange(i64(0), i64(cols), [&](Value* c) {
          Value* term = b_.CreateFMul(coef, value(op.w, t, c));
          Value* gcl = gate(op.cols, op.cols.inclusive, last, c);
          if (gcl) term = b_.CreateFMul(term, decay(gcl, gate(op.cols, op.cols.inclusive, t, c)));
          wsStore(b_.CreateFAdd(wsLoad(S, at(r, c)), term), S, at(r, c));
        });
      });
    });
  }

  const cir::Kernel& k_;
  const std::map<std::string, int64_t>& dims_;
  LlvmKernelLayout& layout_;
  llvm::Module* m_ = nullptr;
  std::map<std::string, int64_t> offset_, width_;
  std::set<std::string> uniform_;
  std::map<std::string, Value*> ptr_;
  Value *T_ = nullptr, *H_ = nullptr, *itemBegin_ = nullptr, *itemEnd_ = nullptr, *cu_ = nullptr, *ws_ = nullptr;
  Value *scalarValues_ = nullptr, *scalarGiven_ = nullptr;
  Value *head_ = nullptr, *batch_ = nullptr, *L_ = nullptr, *tok0_ = nullptr, *firstChunk_ = nullptr;
};

}  // namespace

std::unique_ptr<llvm::Module> emitLlvmKernel(const cir::Kernel& kernel, const std::map<std::string, int64_t>& dims,
                                             llvm::LLVMContext& context, LlvmKernelLayout& layout) {
  layout = LlvmKernelLayout{};
  return Emitter(kernel, dims, context, layout).run();
}

}  // namespace lina::codegen
