#include "compiler/passes/derive_backward.h"

#include <algorithm>
#include <map>
#include <set>

#include "compiler/passes/passes.h"
#include "compiler/rir/verify.h"

namespace lina::passes {

namespace {

// Emits RIR for reverse-mode over one step's SSA values. Pass A and pass B share the rules;
// reads of states are delegated (only pass A sweeps over them).
class AdjointEmitter {
 public:
  AdjointEmitter(const rir::Recurrence& f, DiagnosticEngine& diags, std::string prefix)
      : f_(f), diags_(diags), prefix_(std::move(prefix)), uniform_(rir::uniformValues(f)) {}
  virtual ~AdjointEmitter() = default;

 protected:
  virtual void backwardRead(const rir::Inst& inst, const std::string& g) = 0;

  const rir::Shape& shapeOf(const std::string& v) { return shapes_.at(v); }
  std::string fresh() { return prefix_ + std::to_string(next_++); }  // "." cannot clash with source names

  // Appends `op` to the sink; its result is `name`, or a fresh name.
  std::string emit(rir::Op op, std::vector<std::string> operands, rir::Shape shape, std::string dim = "",
                   std::string name = "") {
    rir::Inst inst;
    inst.op = op;
    inst.result = name.empty() ? fresh() : std::move(name);
    inst.operands = std::move(operands);
    inst.shape = std::move(shape);
    inst.dim = std::move(dim);
    shapes_[inst.result] = inst.shape;
    sink_->push_back(inst);
    return inst.result;
  }
  std::string emitInput(const std::string& name, const rir::Shape& shape) {
    rir::Inst inst;
    inst.op = rir::Op::Input;
    inst.symbol = name;
    inst.result = name;
    inst.shape = shape;
    shapes_[name] = shape;
    sink_->push_back(inst);
    return name;
  }
  void addInputDecl(const std::string& name, const rir::Shape& shape, TensorRole role, const std::string& of) {
    roles_[name] = {name, role, of};
    rir::Decl d;
    d.name = name;
    d.shape = shape;
    out_.inputs.push_back(d);
  }
  void addOutput(const std::string& name, const std::string& value, TensorRole role, const std::string& of) {
    roles_[name] = {name, role, of};
    rir::Decl d;
    d.name = name;
    d.shape = shapeOf(value);
    out_.outputs.push_back(d);
    rir::Inst o;
    o.op = rir::Op::Output;
    o.symbol = name;
    o.operands = {value};
    emitted_.push_back(o);
  }
  // adj[v] += g, reducing g to v's shape when v is a scalar broadcast over a vector. A vector's
  // adjoint may stay a scalar (the same value in every entry) until a vector is needed.
  void accumulate(const std::string& v, std::string g) {
    if (shapeOf(v).empty() && !shapeOf(g).empty()) g = emit(rir::Op::Sum, {g}, {}, shapeOf(g)[0]);
    auto it = adj_.find(v);
    if (it == adj_.end()) adj_[v] = g;
    else it->second = emit(rir::Op::Add, {it->second, g}, shapeOf(it->second).empty() ? shapeOf(g) : shapeOf(it->second));
  }
  // g as a vector shaped like `like` (g itself when it already is one): (like - like) + g.
  std::string materialize(const std::string& g, const std::string& like) {
    if (!shapeOf(g).empty() || shapeOf(like).empty()) return g;
    std::string zero = emit(rir::Op::Sub, {like, like}, shapeOf(like));
    return emit(rir::Op::Add, {zero, g}, shapeOf(like));
  }
  rir::Shape broadcast(const std::string& a, const std::string& b) { return shapeOf(a).empty() ? shapeOf(b) : shapeOf(a); }

  // Whether the gate gets a gradient: present, and neither a constant nor a per-head value.
  bool gateHasGradient(const rir::Gate& g) {
    if (!g.present()) return false;
    const rir::Inst* def = f_.definition(g.value);
    return def && def->op != rir::Op::Const && !uniform_.count(g.value);
  }
  // The states whose after-reads enter the gate-gradient identity without their diagonal (the
  // step's own write u w^T). With it, x (.) dx and u (.) du both carry an O(1) term that cancels
  // exactly, and in fp32 the O(decay) rest drowns in its rounding (docs/backward-design.md).
  bool splitsDiagonal(const std::string& state) {
    for (const rir::Inst& inst : f_.body)
      if (inst.op == rir::Op::Update && inst.symbol == state) return gateHasGradient(inst.rows) || gateHasGradient(inst.cols);
    return false;
  }
  const rir::Inst& updateOf(const std::string& state) {
    for (const rir::Inst& inst : f_.body)
      if (inst.op == rir::Op::Update && inst.symbol == state) return inst;
    throw std::logic_error("no update of state " + state);
  }
  // `read.after state, y over dim` as its strict part plus its diagonal:
  //   result = gate_out (.) read.before(state, gate_dim (.) y over dim) + vec_out (vec_dim . y)
  // where the update is S = D(rows) S D(cols) + outer(u, w) and vec_dim/gate_dim are the side
  // `dim` names. Returns the strict part's name (`strictName`, or a fresh one).
  std::string emitStrictAfterRead(const std::string& state, const std::string& y, const std::string& dim,
                                  const std::string& result, std::string strictName) {
    const rir::Decl* st = f_.state(state);
    const rir::Inst& u = updateOf(state);
    bool overRows = dim == st->shape[0];
    const rir::Gate& gateDim = overRows ? u.rows : u.cols;
    const rir::Gate& gateOut = overRows ? u.cols : u.rows;
    const std::string& vecDim = u.operands[overRows ? 0 : 1];
    const std::string& vecOut = u.operands[overRows ? 1 : 0];
    const std::string outDim = overRows ? st->shape[1] : st->shape[0];
    std::string scaled = gateDim.present() ? emit(rir::Op::Mul, {y, decay(gateDim)}, shapeOf(y)) : y;
    std::string strict = readBefore(state, scaled, dim, outDim, gateOut.present() ? "" : strictName);
    if (gateOut.present()) strict = emit(rir::Op::Mul, {strict, decay(gateOut)}, {outDim}, "", strictName);
    std::string diag = emit(rir::Op::Mul, {vecOut, emit(rir::Op::Dot, {vecDim, y}, {}, dim)}, {outDim});
    emit(rir::Op::Add, {strict, diag}, {outDim}, "", result);
    return strict;
  }
  // exp of a log gate, emitted once per program (the schedule places it before its users).
  std::string decay(const rir::Gate& g) {
    auto it = decays_.find(g.value);
    if (it != decays_.end()) return it->second;
    return decays_[g.value] = emit(rir::Op::Exp, {g.value}, shapeOf(g.value));
  }
  // `read.before|after state, v over dim : [outDim]`, named `name` or fresh.
  std::string emitRead(const std::string& state, const std::string& v, const std::string& dim, const rir::Shape& outShape,
                       bool afterUpdate, const std::string& name = "") {
    rir::Inst r;
    r.op = rir::Op::Read;
    r.symbol = state;
    r.result = name.empty() ? fresh() : name;
    r.operands = {v};
    r.dim = dim;
    r.afterUpdate = afterUpdate;
    r.shape = outShape;
    shapes_[r.result] = r.shape;
    sink_->push_back(r);
    return r.result;
  }
  std::string readBefore(const std::string& state, const std::string& v, const std::string& dim,
                         const std::string& outDim, const std::string& name = "") {
    return emitRead(state, v, dim, {outDim}, false, name);
  }

  // Sweeps `body` (a prefix of F's step) in reverse from the current adjoints.
  void sweep(const std::vector<rir::Inst>& body) {
    for (size_t i = body.size(); i-- > 0;) {
      const rir::Inst& inst = body[i];
      if (!rir::hasResult(inst.op)) continue;
      auto it = adj_.find(inst.result);
      if (it != adj_.end()) rule(inst, it->second);
    }
  }

  void rule(const rir::Inst& inst, const std::string& g) {
    const std::vector<std::string>& x = inst.operands;
    switch (inst.op) {
      case rir::Op::Input:
        inputAdj_[inst.symbol] =
            inputAdj_.count(inst.symbol) ? emit(rir::Op::Add, {inputAdj_[inst.symbol], g}, inst.shape) : g;
        return;
      case rir::Op::Param:  // d(the value used); a default expression is not differentiated
        paramAdj_[inst.symbol] =
            paramAdj_.count(inst.symbol) ? emit(rir::Op::Add, {paramAdj_[inst.symbol], g}, inst.shape) : g;
        return;
      case rir::Op::Neg:
        accumulate(x[0], emit(rir::Op::Neg, {g}, shapeOf(g)));
        return;
      case rir::Op::Add:
        accumulate(x[0], g);
        accumulate(x[1], g);
        return;
      case rir::Op::Sub:
        accumulate(x[0], g);
        accumulate(x[1], emit(rir::Op::Neg, {g}, shapeOf(g)));
        return;
      case rir::Op::Mul:
        accumulate(x[0], emit(rir::Op::Mul, {g, x[1]}, broadcast(g, x[1])));
        accumulate(x[1], emit(rir::Op::Mul, {g, x[0]}, broadcast(g, x[0])));
        return;
      case rir::Op::Div: {
        accumulate(x[0], emit(rir::Op::Div, {g, x[1]}, broadcast(g, x[1])));
        std::string q = emit(rir::Op::Div, {inst.result, x[1]}, inst.shape);  // a / b^2 = out / b
        accumulate(x[1], emit(rir::Op::Neg, {emit(rir::Op::Mul, {g, q}, inst.shape)}, inst.shape));
        return;
      }
      case rir::Op::Pow: {
        std::string da = emit(rir::Op::Div, {emit(rir::Op::Mul, {x[1], inst.result}, inst.shape), x[0]}, inst.shape);
        accumulate(x[0], emit(rir::Op::Mul, {g, da}, inst.shape));
        std::string db = emit(rir::Op::Mul, {inst.result, emit(rir::Op::Log, {x[0]}, shapeOf(x[0]))}, inst.shape);
        accumulate(x[1], emit(rir::Op::Mul, {g, db}, inst.shape));
        return;
      }
      case rir::Op::Exp:
        accumulate(x[0], emit(rir::Op::Mul, {g, inst.result}, inst.shape));
        return;
      case rir::Op::Log:
        accumulate(x[0], emit(rir::Op::Div, {g, x[0]}, inst.shape));
        return;
      case rir::Op::Sum:
        accumulate(x[0], g);
        return;
      case rir::Op::Dot:
        accumulate(x[0], emit(rir::Op::Mul, {g, x[1]}, shapeOf(x[1])));
        accumulate(x[1], emit(rir::Op::Mul, {g, x[0]}, shapeOf(x[0])));
        return;
      case rir::Op::Softmax: {
        std::string gv = materialize(g, inst.result);
        std::string s = emit(rir::Op::Dot, {inst.result, gv}, {}, inst.dim);
        accumulate(x[0], emit(rir::Op::Mul, {inst.result, emit(rir::Op::Sub, {gv, s}, inst.shape)}, inst.shape));
        return;
      }
      case rir::Op::Read:
        backwardRead(inst, g);
        return;
      default:
        return;  // constants, dims, head
    }
  }

  // The input and vector-param adjoints as outputs `<prefix>_<name>`.
  void emitGradientOutputs(const std::string& prefix) {
    for (const auto& [name, d] : inputAdj_) addOutput(prefix + name, materialize(d, name), TensorRole::InputGradient, name);
    for (const auto& [name, d] : paramAdj_) addOutput(prefix + name, materialize(d, name), TensorRole::ParamGradient, name);
  }

  // Orders `pending` so operands come first, a read before an update of its state precedes it and
  // a read after it follows it.
  bool schedule(std::vector<rir::Inst> pending, const char* what) {
    std::set<std::string> done, updated;
    std::map<std::string, int> beforeReadsLeft;
    for (const rir::Inst& inst : pending)
      if (inst.op == rir::Op::Read && !inst.afterUpdate) ++beforeReadsLeft[inst.symbol];
    auto ready = [&](const rir::Inst& inst) {
      for (const std::string& o : inst.operands)
        if (!done.count(o)) return false;
      for (const rir::Gate* g : {&inst.rows, &inst.cols})
        if (g->present() && !done.count(g->value)) return false;
      if (inst.op == rir::Op::Read) return inst.afterUpdate == (updated.count(inst.symbol) > 0);
      if (inst.op == rir::Op::Update) return beforeReadsLeft[inst.symbol] == 0;
      return true;
    };
    while (!pending.empty()) {
      auto it = std::find_if(pending.begin(), pending.end(), ready);
      if (it == pending.end()) {
        diags_.error(f_.loc, "@" + f_.name + ": cannot derive the backward's " + what +
                                 ": a read before an update needs values that only exist after it (not supported yet)");
        return false;
      }
      if (rir::hasResult(it->op)) done.insert(it->result);
      if (it->op == rir::Op::Update) updated.insert(it->symbol);
      if (it->op == rir::Op::Read && !it->afterUpdate) --beforeReadsLeft[it->symbol];
      out_.body.push_back(*it);
      pending.erase(it);
    }
    return true;
  }

  void startProgram(const std::string& suffix) {
    out_.name = f_.name + suffix;
    out_.dims = f_.dims;
    out_.inputs = f_.inputs;
    for (const rir::Decl& in : f_.inputs) roles_[in.name] = {in.name, TensorRole::ForwardInput, in.name};
    out_.params = f_.params;
    out_.chunkSizes = f_.chunkSizes;
    out_.chunkTuned = f_.chunkTuned;
    out_.loc = f_.loc;
  }

  const rir::Recurrence& f_;
  DiagnosticEngine& diags_;
  std::string prefix_;
  std::set<std::string> uniform_;  // F's per-head values (rir::uniformValues)
  rir::Recurrence out_;
  std::vector<rir::Inst> emitted_;
  std::vector<rir::Inst>* sink_ = &emitted_;  // where emit() appends
  std::map<std::string, rir::Shape> shapes_;
  std::map<std::string, std::string> adj_, inputAdj_, paramAdj_;
  std::map<std::string, std::string> decays_;  // log gate -> its exp
  int next_ = 0;

 public:
  // What each input, output and state of the program is (its name is only a label).
  std::map<std::string, SignatureEntry> roles_;
};

class PassABuilder : public AdjointEmitter {
 public:
  PassABuilder(const rir::Recurrence& f, DiagnosticEngine& diags) : AdjointEmitter(f, diags, "d.") {}

  std::optional<rir::Recurrence> run() {
    startProgram("_bwd_a");
    out_.states = f_.states;
    for (const rir::Decl& o : f_.outputs) addInputDecl("d_" + o.name, o.shape, TensorRole::OutputCotangent, o.name);
    std::vector<rir::Inst> forward;
    for (const rir::Inst& inst : f_.body) {
      if (inst.op == rir::Op::Output) continue;  // pass A has its own outputs
      if (inst.op == rir::Op::Read) readIndex_[inst.result] = static_cast<int>(readIndex_.size());
      forward.push_back(inst);
      if (rir::hasResult(inst.op)) shapes_[inst.result] = inst.shape;
    }
    for (size_t i = f_.body.size(); i-- > 0;)
      if (f_.body[i].op == rir::Op::Output)
        accumulate(f_.body[i].operands[0], emitInput("d_" + f_.body[i].symbol, shapeOf(f_.body[i].operands[0])));
    sweep(forward);  // updates are skipped: their operands' gradients are pass B's
    emitGradientOutputs("dA_");
    std::vector<rir::Inst> body;
    sink_ = &body;
    for (const rir::Inst& inst : forward) {
      if (inst.op == rir::Op::Read && inst.afterUpdate && splitsDiagonal(inst.symbol)) {
        auto named = strictNames_.find(inst.result);
        emitStrictAfterRead(inst.symbol, inst.operands[0], inst.dim, inst.result,
                            named == strictNames_.end() ? "" : named->second);
      } else {
        body.push_back(inst);
      }
    }
    sink_ = &emitted_;
    body.insert(body.end(), emitted_.begin(), emitted_.end());
    if (!schedule(body, "forward pass")) return std::nullopt;
    return out_;
  }

 private:
  // dx = read(S, dr) over the other dim, and the gate-identity terms x (.) dx and r (.) dr. For a
  // state whose gates get gradients, both terms leave out the step's own write (see
  // splitsDiagonal): dx and r are after-reads emitted as strict part + diagonal.
  void backwardRead(const rir::Inst& inst, const std::string& gIn) override {
    const rir::Decl* s = f_.state(inst.symbol);
    std::string g = materialize(gIn, inst.result);
    std::string dim = inst.dim == s->shape[0] ? s->shape[1] : s->shape[0];
    const std::string& x = inst.operands[0];
    std::string dx = fresh(), dxTerm = dx, rTerm = inst.result;
    if (inst.afterUpdate && splitsDiagonal(inst.symbol)) {
      dxTerm = emitStrictAfterRead(inst.symbol, g, dim, dx, "");
      rTerm = strictNames_.emplace(inst.result, fresh()).first->second;  // made when the read is rewritten
    } else {
      emitRead(inst.symbol, g, dim, shapeOf(x), inst.afterUpdate, dx);
    }
    accumulate(x, dx);
    std::string tag = std::to_string(readIndex_.at(inst.result));
    addOutput("x_" + tag, x, TensorRole::ReadIntermediate, tag);
    addOutput("dr_" + tag, g, TensorRole::ReadIntermediate, tag);
    addOutput("ic_" + tag, emit(rir::Op::Mul, {x, dxTerm}, shapeOf(x)), TensorRole::ReadIntermediate, tag);
    shapes_[rTerm] = inst.shape;
    addOutput("io_" + tag, emit(rir::Op::Mul, {rTerm, g}, inst.shape), TensorRole::ReadIntermediate, tag);
  }

  std::map<std::string, std::string> strictNames_;  // after-read result -> name of its strict part
  std::map<std::string, int> readIndex_;
};

// Pass B on flipped time (see derive_backward.h): the adjoint states, du, dw and the gate
// gradients, then reverse-mode through the producers of u, w and the gates.
class PassBBuilder : public AdjointEmitter {
 public:
  PassBBuilder(const rir::Recurrence& f, DiagnosticEngine& diags) : AdjointEmitter(f, diags, "e.") {}

  std::optional<rir::Recurrence> run() {
    startProgram("_bwd_b");
    // The forward values pass B needs: everything except reads, updates and outputs, and only if
    // no update operand depends on a read.
    std::vector<rir::Inst> forward;
    std::map<std::string, const rir::Inst*> updates;
    std::vector<const rir::Inst*> reads;
    for (const rir::Inst& inst : f_.body) {
      if (inst.op == rir::Op::Update) updates[inst.symbol] = &inst;
      if (inst.op == rir::Op::Read) reads.push_back(&inst);
    }
    for (const rir::Decl& st : f_.states) {
      std::set<std::string> reading = rir::valuesReading(f_, st.name);
      for (const auto& [name, u] : updates)
        for (const std::string& o : u->operands)
          if (reading.count(o)) {
            diags_.error(u->loc, "@" + f_.name + ": the backward's pass B does not support update operands computed "
                                                 "from state reads yet ('" + name + "' reads '" + st.name + "')");
            return std::nullopt;
          }
    }
    std::set<std::string> readResults;
    for (const rir::Inst* r : reads) readResults.insert(r->result);
    for (const rir::Inst& inst : f_.body) {
      if (inst.op == rir::Op::Read || inst.op == rir::Op::Update || inst.op == rir::Op::Output) continue;
      bool needsRead = false;
      for (const std::string& o : inst.operands) needsRead = needsRead || readResults.count(o) || !shapes_.count(o);
      if (needsRead) continue;  // downstream of reads: pass A's business
      forward.push_back(inst);
      shapes_[inst.result] = inst.shape;
    }
    for (size_t i = 0; i < reads.size(); ++i) {
      const rir::Inst& r = *reads[i];
      std::string tag = std::to_string(i);
      rir::Shape xs = f_.definition(r.operands[0])->shape;  // the operand may be downstream of a read
      rir::Shape rs = r.shape;
      addInputDecl("x_" + tag, xs, TensorRole::ReadIntermediate, tag);
      addInputDecl("dr_" + tag, rs, TensorRole::ReadIntermediate, tag);
      addInputDecl("ic_" + tag, xs, TensorRole::ReadIntermediate, tag);
      addInputDecl("io_" + tag, rs, TensorRole::ReadIntermediate, tag);
      emitInput("x_" + tag, xs);
      emitInput("dr_" + tag, rs);
      emitInput("ic_" + tag, xs);
      emitInput("io_" + tag, rs);
    }
    for (const rir::Decl& st : f_.states) {
      if (!updates.count(st.name)) continue;
      const rir::Inst& u = *updates[st.name];
      std::string rowsDim = st.shape[0], colsDim = st.shape[1];
      addInputDecl("crow_" + st.name, {rowsDim}, TensorRole::StateRowSums, st.name);
      addInputDecl("ccol_" + st.name, {colsDim}, TensorRole::StateColumnSums, st.name);
      std::string crow = emitInput("crow_" + st.name, {rowsDim});
      std::string ccol = emitInput("ccol_" + st.name, {colsDim});
      const std::string& uu = u.operands[0];
      const std::string& ww = u.operands[1];
      std::vector<std::string> adjoint;  // this state's adjoint states
      std::vector<std::string> duParts, dwParts, duDiagonal, dwDiagonal, rowAfter, rowBefore, colAfter, colBefore;
      bool hasAfter = false;
      for (size_t i = 0; i < reads.size(); ++i) {
        const rir::Inst& r = *reads[i];
        if (r.symbol != st.name) continue;
        std::string tag = std::to_string(i);
        bool overRows = r.dim == rowsDim;
        std::string rho = overRows ? "x_" + tag : "dr_" + tag;      // row-side vector of the outer term
        std::string kappa = overRows ? "dr_" + tag : "x_" + tag;    // column-side vector
        std::string rowTerm = overRows ? "ic_" + tag : "io_" + tag; // gate-identity terms
        std::string colTerm = overRows ? "io_" + tag : "ic_" + tag;
        std::string k = addAdjointState(st, tag);
        adjoint.push_back(k);
        // du += K w (+ rho (kappa . w) for the current step's after-read), dw likewise.
        duParts.push_back(readBefore(k, ww, colsDim, rowsDim));
        dwParts.push_back(readBefore(k, uu, rowsDim, colsDim));
        if (r.afterUpdate) {
          hasAfter = true;
          duDiagonal.push_back(emit(rir::Op::Mul, {rho, emit(rir::Op::Dot, {kappa, ww}, {}, colsDim)}, {rowsDim}));
          dwDiagonal.push_back(emit(rir::Op::Mul, {kappa, emit(rir::Op::Dot, {rho, uu}, {}, rowsDim)}, {colsDim}));
          rowAfter.push_back(rowTerm);
          colAfter.push_back(colTerm);
          update(k, st, u, gated(rho, u.rows), gated(kappa, u.cols));
        } else {
          rowBefore.push_back(rowTerm);
          colBefore.push_back(colTerm);
          update(k, st, u, rho, kappa);
        }
        if (!initialHolder_.count(st.name) && r.afterUpdate) initialHolder_[st.name] = k;
      }
      if (!hasAfter) {  // d(final state) needs an adjoint state to enter through
        std::string k = addAdjointState(st, "h");
        adjoint.push_back(k);
        duParts.push_back(readBefore(k, ww, colsDim, rowsDim));
        dwParts.push_back(readBefore(k, uu, rowsDim, colsDim));
        update(k, st, u, emit(rir::Op::Sub, {uu, uu}, {rowsDim}), emit(rir::Op::Sub, {ww, ww}, {colsDim}));
        initialHolder_[st.name] = k;
      }
      // du = strict part (reads of the adjoint states) + the after-reads' diagonal. The gate
      // identity pairs u (.) du with pass A's terms: both without the diagonal when pass A split
      // it off (splitsDiagonal), both with it otherwise.
      std::string duStrict = sumAll(duParts, {rowsDim});
      std::string dwStrict = sumAll(dwParts, {colsDim});
      std::string du = duDiagonal.empty() ? duStrict : emit(rir::Op::Add, {duStrict, sumAll(duDiagonal, {rowsDim})}, {rowsDim});
      std::string dw = dwDiagonal.empty() ? dwStrict : emit(rir::Op::Add, {dwStrict, sumAll(dwDiagonal, {colsDim})}, {colsDim});
      accumulate(uu, du);
      accumulate(ww, dw);
      bool strict = splitsDiagonal(st.name);
      gateGradient(st, adjoint, true, u.rows, crow, uu, strict ? duStrict : du, rowAfter, rowBefore, rowsDim);
      gateGradient(st, adjoint, false, u.cols, ccol, ww, strict ? dwStrict : dw, colAfter, colBefore, colsDim);
    }
    sweep(forward);
    emitGradientOutputs("dB_");
    forward.insert(forward.end(), emitted_.begin(), emitted_.end());
    if (!schedule(forward, "adjoint pass")) return std::nullopt;
    return out_;
  }

  // Which adjoint state of each forward state receives d(final state) as its initial value.
  std::map<std::string, std::string> initialHolder_;
  std::vector<GateSum> gateSums_;

 private:
  void backwardRead(const rir::Inst&, const std::string&) override {}

  std::string addAdjointState(const rir::Decl& st, const std::string& tag) {
    rir::Decl k = st;
    k.name = "K_" + st.name + "_" + tag;
    roles_[k.name] = {k.name, TensorRole::AdjointState, st.name};
    out_.states.push_back(k);
    return k.name;
  }
  // v scaled by this step's decay along its side (exp of the log gate).
  std::string gated(const std::string& v, const rir::Gate& g) {
    return g.present() ? emit(rir::Op::Mul, {v, decay(g)}, shapeOf(v)) : v;
  }
  void update(const std::string& k, const rir::Decl& st, const rir::Inst& fu, const std::string& a, const std::string& b) {
    rir::Inst u;
    u.op = rir::Op::Update;
    u.symbol = k;
    u.rows = fu.rows;
    u.cols = fu.cols;
    u.operands = {a, b};
    (void)st;
    emitted_.push_back(u);
  }
  std::string sumAll(const std::vector<std::string>& parts, const rir::Shape& shape) {
    std::string s = parts.front();
    for (size_t i = 1; i < parts.size(); ++i) s = emit(rir::Op::Add, {s, parts[i]}, shape);
    return s;
  }
  // dL/da_t = running_sum(after + before - v (.) dv, from c) - before (flipped time), summed over
  // the dim for a scalar gate; added to the gate value's adjoint. Per-head constant gates get none.
  void gateGradient(const rir::Decl& state, const std::vector<std::string>& adjointStates, bool rowSide, const rir::Gate& g,
                    const std::string& c, const std::string& v, const std::string& dv,
                    const std::vector<std::string>& after, const std::vector<std::string>& before,
                    const std::string& dim) {
    if (!gateHasGradient(g)) return;
    // The sum's two summands: the read terms, and -v (.) dv (left out where a GPU kernel
    // re-anchors the sum, GateSum).
    std::string write = emit(rir::Op::Neg, {emit(rir::Op::Mul, {v, dv}, {dim})}, {dim});
    std::string reads;
    for (const std::string& t : after) reads = reads.empty() ? t : emit(rir::Op::Add, {reads, t}, {dim});
    for (const std::string& t : before) reads = reads.empty() ? t : emit(rir::Op::Add, {reads, t}, {dim});
    if (reads.empty()) reads = emit(rir::Op::Sub, {write, write}, {dim});  // no read of the state: zeros
    std::string grad = emit(rir::Op::RunningSum, {reads, c, write}, {dim});
    gateSums_.push_back({grad, state.name, rowSide, adjointStates});
    for (const std::string& b : before) grad = emit(rir::Op::Sub, {grad, b}, {dim});
    if (shapeOf(g.value).empty()) grad = emit(rir::Op::Sum, {grad}, {}, dim);
    accumulate(g.value, grad);
  }
};

// The roles of the declarations that survived dead-code elimination, in declaration order.
std::vector<SignatureEntry> signatureOf(const rir::Recurrence& pass, const std::map<std::string, SignatureEntry>& roles) {
  std::vector<SignatureEntry> out;
  for (const auto* decls : {&pass.inputs, &pass.outputs, &pass.states})
    for (const rir::Decl& d : *decls) {
      auto it = roles.find(d.name);
      if (it != roles.end()) out.push_back(it->second);
    }
  return out;
}

std::optional<rir::Recurrence> runPassA(const rir::Recurrence& forward, DiagnosticEngine& diags,
                                        std::vector<SignatureEntry>* signature) {
  PassABuilder builder(forward, diags);
  std::optional<rir::Recurrence> a = builder.run();
  if (!a) return std::nullopt;
  rir::Module m{{std::move(*a)}};
  eliminateDeadCode(m, diags);  // adjoints nothing reads (e.g. of scalar params) and dead forward values
  if (signature) *signature = signatureOf(m.recurrences.front(), builder.roles_);
  return std::move(m.recurrences.front());
}

}  // namespace

const char* tensorRoleName(TensorRole r) {
  switch (r) {
    case TensorRole::ForwardInput: return "forward-input";
    case TensorRole::OutputCotangent: return "output-cotangent";
    case TensorRole::InputGradient: return "input-gradient";
    case TensorRole::ParamGradient: return "param-gradient";
    case TensorRole::ReadIntermediate: return "read-intermediate";
    case TensorRole::StateRowSums: return "state-row-sums";
    case TensorRole::StateColumnSums: return "state-column-sums";
    case TensorRole::AdjointState: return "adjoint-state";
  }
  return "?";
}

const SignatureEntry* BackwardSignature::find(const std::vector<SignatureEntry>& pass, const std::string& tensor) {
  for (const SignatureEntry& e : pass)
    if (e.tensor == tensor) return &e;
  return nullptr;
}

std::string BackwardSignature::tensorFor(const std::vector<SignatureEntry>& pass, TensorRole role, const std::string& of) {
  for (const SignatureEntry& e : pass)
    if (e.role == role && e.of == of) return e.tensor;
  return "";
}

std::vector<std::string> BackwardSignature::adjointStatesOf(const std::string& state) const {
  std::vector<std::string> out;
  for (const SignatureEntry& e : passB)
    if (e.role == TensorRole::AdjointState && e.of == state) out.push_back(e.tensor);
  return out;
}

std::optional<rir::Recurrence> deriveBackwardPassA(const rir::Recurrence& forward, DiagnosticEngine& diags) {
  return runPassA(forward, diags, nullptr);
}

std::optional<DerivedPassB> deriveBackwardPassB(const rir::Recurrence& forward, DiagnosticEngine& diags) {
  PassBBuilder builder(forward, diags);
  std::optional<rir::Recurrence> b = builder.run();
  if (!b) return std::nullopt;
  rir::Module m{{std::move(*b)}};
  eliminateDeadCode(m, diags);
  std::vector<SignatureEntry> signature = signatureOf(m.recurrences.front(), builder.roles_);
  return DerivedPassB{std::move(m.recurrences.front()), builder.initialHolder_, builder.gateSums_, std::move(signature)};
}

std::optional<DerivedBackward> deriveBackward(const rir::Recurrence& forward, DiagnosticEngine& diags) {
  DerivedBackward d;
  std::optional<rir::Recurrence> a = runPassA(forward, diags, &d.signature.passA);
  if (!a || !rir::verify(*a, diags)) return std::nullopt;
  std::optional<DerivedPassB> b = deriveBackwardPassB(forward, diags);
  if (!b || !rir::verify(b->program, diags)) return std::nullopt;
  d.passA = std::move(*a);
  d.passB = std::move(b->program);
  d.signature.passB = std::move(b->signature);
  d.initialHolder = std::move(b->initialHolder);
  d.gateSums = std::move(b->gateSums);
  return d;
}

}  // namespace lina::passes
