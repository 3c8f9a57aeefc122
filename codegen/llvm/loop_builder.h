// The IRBuilder scaffolding the CPU code generator (emit_llvm.cc) writes its loop nests with:
// counted loops, if/else, float accumulators that the optimiser promotes to registers, and fp32
// loads and stores, in one function being built.
#pragma once

#include <llvm/IR/IRBuilder.h>

#include <cstdint>
#include <functional>

namespace lina::codegen {

class LoopBuilder {
 protected:
  explicit LoopBuilder(llvm::LLVMContext& ctx) : ctx_(ctx), b_(ctx), f32_(b_.getFloatTy()), i64_(b_.getInt64Ty()) {}

  using Value = llvm::Value;
  Value* i64(int64_t v) { return b_.getInt64(static_cast<uint64_t>(v)); }
  Value* f32(double v) { return llvm::ConstantFP::get(f32_, v); }

  // for (i = begin; i < end; ++i) body(i)
  void forRange(Value* begin, Value* end, const std::function<void(Value*)>& body) {
    llvm::BasicBlock* before = b_.GetInsertBlock();
    auto* cond = llvm::BasicBlock::Create(ctx_, "loop", fn_);
    auto* inside = llvm::BasicBlock::Create(ctx_, "body", fn_);
    auto* after = llvm::BasicBlock::Create(ctx_, "after", fn_);
    b_.CreateBr(cond);
    b_.SetInsertPoint(cond);
    llvm::PHINode* i = b_.CreatePHI(i64_, 2);
    i->addIncoming(begin, before);
    b_.CreateCondBr(b_.CreateICmpSLT(i, end), inside, after);
    b_.SetInsertPoint(inside);
    body(i);
    i->addIncoming(b_.CreateAdd(i, i64(1)), b_.GetInsertBlock());
    b_.CreateBr(cond);
    b_.SetInsertPoint(after);
  }
  void ifThenElse(Value* condition, const std::function<void()>& then, const std::function<void()>& otherwise) {
    auto* yes = llvm::BasicBlock::Create(ctx_, "then", fn_);
    auto* no = llvm::BasicBlock::Create(ctx_, "else", fn_);
    auto* join = llvm::BasicBlock::Create(ctx_, "join", fn_);
    b_.CreateCondBr(condition, yes, no);
    b_.SetInsertPoint(yes);
    then();
    b_.CreateBr(join);
    b_.SetInsertPoint(no);
    otherwise();
    b_.CreateBr(join);
    b_.SetInsertPoint(join);
  }
  // A float accumulator (an entry-block alloca, promoted to a register by the optimiser).
  Value* slot() {
    llvm::IRBuilder<> entry(entry_, entry_->begin());
    return entry.CreateAlloca(f32_);
  }

  // fp32 memory
  Value* at(Value* base, Value* index) { return b_.CreateGEP(f32_, base, index); }
  Value* load(Value* base, Value* index) { return b_.CreateLoad(f32_, at(base, index)); }
  void store(Value* v, Value* base, Value* index) { b_.CreateStore(v, at(base, index)); }

  llvm::LLVMContext& ctx_;
  llvm::IRBuilder<> b_;
  llvm::Function* fn_ = nullptr;      // the function being built
  llvm::BasicBlock* entry_ = nullptr;  // its entry block (where accumulators are allocated)
  llvm::Type* f32_;
  llvm::IntegerType* i64_;
};

}  // namespace lina::codegen
