// lina._lina.CpuRunner and GpuRunner: the model runner's engines (library/model) for lina.Runner.
// CpuRunner: a validated checkpoint, its fp32 blocks, the tokenizer when the directory has one,
// and a streaming generator of token ids. GpuRunner: the GPU engine (cuBLAS projections, lina's
// kernels, CUDA-graph decode) over a batch of prompts, each new token handed to a callback.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <random>

#include "library/convert/llama_to_fla.h"
#include "library/model/checkpoint.h"
#include "library/model/cpu_model.h"
#if LINA_HAVE_MODEL_GPU
#include "library/model/gpu_model.h"
#endif
#include "library/model/sampling.h"
#include "library/model/tokenizer.h"
#include "support/error.h"

namespace py = pybind11;

namespace lina::python {

namespace {

// A model directory and its tokenizer, opened on first use (both engines).
struct ModelDirectory {
  std::string dir;
  std::unique_ptr<model::Tokenizer> tokenizer;
  const model::Tokenizer& tokens() {
    if (!tokenizer) tokenizer = model::Tokenizer::open(dir);
    return *tokenizer;
  }
};

struct Engine : ModelDirectory {
  model::ModelConfig config;
  std::unique_ptr<model::CpuModel> model;
};

// One generation: the prompt fed on the first next(), then one token per next() until the EOS id
// or max_new tokens.
struct Stream {
  std::shared_ptr<Engine> engine;
  std::vector<int64_t> prompt;
  int64_t maxNew = 0, produced = 0;
  model::SamplingOptions sampling;
  std::mt19937_64 rng;
  model::CpuModel::State state;
  std::vector<float> logits;
  bool started = false, done = false;

  int64_t next() {
    if (done || produced >= maxNew) throw py::stop_iteration();
    if (!started) {
      for (int64_t t : prompt) logits = engine->model->step(t, state);
      started = true;
    } else {
      logits = engine->model->step(lastToken, state);
    }
    lastToken = model::sampleToken(logits, sampling, rng);
    ++produced;
    if (lastToken == engine->config.eosTokenId) done = true;
    return lastToken;
  }
  int64_t lastToken = 0;
};

}  // namespace

#if LINA_HAVE_MODEL_GPU
namespace {

struct GpuEngine : ModelDirectory {
  std::unique_ptr<model::GpuModel> model;
};

void checkPrompts(const std::vector<std::vector<int64_t>>& prompts, int64_t vocab) {
  if (prompts.empty()) throw Error("prompts: expected at least one prompt; got none");
  for (size_t n = 0; n < prompts.size(); ++n) {
    if (prompts[n].empty()) throw Error("prompt " + std::to_string(n) + ": expected at least one token; got none");
    for (int64_t t : prompts[n])
      if (t < 0 || t >= vocab)
        throw Error("prompt " + std::to_string(n) + ": token " + std::to_string(t) +
                    " is outside the vocabulary (vocab_size " + std::to_string(vocab) + ")");
  }
}

void bindGpuRunner(py::module_& m) {
  py::class_<GpuEngine, std::shared_ptr<GpuEngine>>(m, "GpuRunner")
      .def(py::init([](const std::string& dir, const std::string& dtype, int64_t maxBatch, int64_t maxPrefillTokens,
                       bool graphs, int device) {
             auto e = std::make_shared<GpuEngine>();
             e->dir = dir;
             model::GpuModelOptions o;
             o.dtype = dtype;
             o.maxBatch = maxBatch;
             o.maxPrefillTokens = maxPrefillTokens;
             o.graphs = graphs;
             o.device = device;
             const model::Checkpoint ck = model::Checkpoint::open(dir);
             e->model = std::make_unique<model::GpuModel>(ck, o);
             return e;
           }),
           py::arg("model_dir"), py::arg("dtype") = "bf16", py::arg("max_batch") = 64,
           py::arg("max_prefill_tokens") = 16384, py::arg("graphs") = true, py::arg("device") = 0)
      .def_property_readonly("model_type", [](const GpuEngine& e) { return std::string(model::modelTypeName(e.model->config().type)); })
      .def_property_readonly("vocab_size", [](const GpuEngine& e) { return e.model->config().vocabSize; })
      .def_property_readonly("bos_token_id", [](const GpuEngine& e) { return e.model->config().bosTokenId; })
      .def_property_readonly("eos_token_id", [](const GpuEngine& e) { return e.model->config().eosTokenId; })
      .def("encode", [](GpuEngine& e, const std::string& text) { return e.tokens().encode(text); })
      .def("decode", [](GpuEngine& e, const std::vector<int64_t>& ids) { return e.tokens().decode(ids); })
      .def_property_readonly("device_name", [](const GpuEngine& e) { return e.model->deviceName(); })
      .def_property_readonly("weight_bytes", [](const GpuEngine& e) { return e.model->weightBytes(); })
      .def_property_readonly("device_bytes", [](const GpuEngine& e) { return e.model->deviceBytes(); })
      .def("logits", [](GpuEngine& e, const std::vector<std::vector<int64_t>>& prompts) {
             checkPrompts(prompts, e.model->config().vocabSize);
             py::gil_scoped_release release;
             return e.model->prefill(prompts);
           }, py::arg("prompts"), "the fp32 logits after the last token of each prompt")
      .def("generate",
           [](GpuEngine& e, const std::vector<std::vector<int64_t>>& prompts, int64_t maxNew, double temperature,
              int64_t topK, double topP, uint64_t seed, bool stopAtEos, py::object onToken) {
             checkPrompts(prompts, e.model->config().vocabSize);
             if (maxNew < 1) throw Error("max_new_tokens: expected >= 1; got " + std::to_string(maxNew));
             model::GenerateOptions g;
             g.maxNewTokens = maxNew;
             g.sampling = {temperature, topK, topP};
             g.sampling.validate();
             g.seed = seed;
             g.stopAtEos = stopAtEos;
             std::function<bool(int64_t, int64_t)> callback;
             std::exception_ptr failure;
             if (!onToken.is_none())
               callback = [&](int64_t n, int64_t token) {
                 if (failure) return true;
                 py::gil_scoped_acquire acquire;
                 try {
                   return py::bool_(onToken(n, token)).cast<bool>();
                 } catch (...) {  // rethrown after the engine returns: it must not unwind through it
                   failure = std::current_exception();
                   return true;
                 }
               };
             model::GenerateResult r;
             {
               py::gil_scoped_release release;
               r = e.model->generate(prompts, g, callback);
             }
             if (failure) std::rethrow_exception(failure);
             py::dict stats;
             stats["prompt_tokens"] = r.promptTokens;
             stats["decoded_tokens"] = r.decodedTokens;
             stats["decode_steps"] = r.decodeSteps;
             stats["prefill_seconds"] = r.prefillSeconds;
             stats["decode_seconds"] = r.decodeSeconds;
             return py::make_tuple(r.tokens, stats);
           },
           py::arg("prompts"), py::arg("max_new_tokens") = 32, py::arg("temperature") = 0.0, py::arg("top_k") = 0,
           py::arg("top_p") = 1.0, py::arg("seed") = 0, py::arg("stop_at_eos") = true, py::arg("on_token") = py::none(),
           "prefill and decode every prompt; on_token(sequence, token) sees each new token and returns True to end "
           "that sequence; returns (new tokens per prompt, timings)");
}

}  // namespace
#endif

void bindModels(py::module_& m) {
#if LINA_HAVE_MODEL_GPU
  bindGpuRunner(m);
#endif
  m.def(
      "convert_llama",
      [](const std::string& source, const std::string& destination, const std::string& target,
         const std::map<std::string, std::string>& config, int64_t maxShardBytes, uint64_t seed) {
        if (target != "gla" && target != "gsa") throw Error("target: expected 'gla' or 'gsa'; got '" + target + "'");
        convert::LlamaConversion c;
        c.source = source;
        c.destination = destination;
        c.target = target == "gsa" ? model::ModelType::GSA : model::ModelType::GLA;
        c.configOverrides = config;
        c.maxShardBytes = maxShardBytes;
        c.seed = seed;
        if (c.source == c.destination) throw Error("destination: expected a directory other than the source; got '" + destination + "' for both");
        const convert::ConversionReport r = convert::convertLlama(c);
        py::dict out;
        py::list tensors;
        const char* kinds[] = {"copied", "initialised", "dropped"};
        for (const convert::TensorRecord& t : r.tensors)
          tensors.append(py::dict(py::arg("name") = t.name, py::arg("source") = t.source, py::arg("shape") = t.shape,
                                  py::arg("kind") = kinds[t.kind]));
        out["tensors"] = tensors;
        out["files"] = r.files;
        out["copied"] = r.copied;
        out["initialised"] = r.initialised;
        out["dropped"] = r.dropped;
        out["report"] = r.text();
        return out;
      },
      py::arg("source"), py::arg("destination"), py::arg("target") = "gla", py::arg("config") = std::map<std::string, std::string>{},
      py::arg("max_shard_bytes") = int64_t{5} << 30, py::arg("seed") = 0,
      "converts a Llama/Mistral checkpoint into an fla GLA or GSA one (as `lina-convert llama-to-gla|gsa`)");
  m.def("init_checkpoint", [](const std::string& config, const std::string& out, const std::string& dtype, uint64_t seed) {
        if (dtype != "bf16" && dtype != "fp16" && dtype != "fp32") throw Error("dtype: expected bf16, fp16 or fp32; got '" + dtype + "'");
        model::writeRandomCheckpoint(model::loadConfig(config), out,
                                     dtype == "bf16" ? model::DType::BF16 : dtype == "fp16" ? model::DType::F16 : model::DType::F32, seed);
      }, py::arg("config"), py::arg("out_dir"), py::arg("dtype") = "bf16", py::arg("seed") = 0,
      "writes a randomly initialised checkpoint of config.json `config` to `out_dir` (as `lina-run --init`)");
  py::class_<Stream>(m, "GenerationStream")
      .def("__iter__", [](Stream& s) -> Stream& { return s; })
      .def("__next__", &Stream::next);
  py::class_<Engine, std::shared_ptr<Engine>>(m, "CpuRunner")
      .def(py::init([](const std::string& dir) {
             auto e = std::make_shared<Engine>();
             e->dir = dir;
             const model::Checkpoint ck = model::Checkpoint::open(dir);
             e->config = ck.config();
             e->model = std::make_unique<model::CpuModel>(ck);
             return e;
           }),
           py::arg("model_dir"))
      .def_property_readonly("model_type", [](const Engine& e) { return std::string(model::modelTypeName(e.config.type)); })
      .def_property_readonly("vocab_size", [](const Engine& e) { return e.config.vocabSize; })
      .def_property_readonly("bos_token_id", [](const Engine& e) { return e.config.bosTokenId; })
      .def_property_readonly("eos_token_id", [](const Engine& e) { return e.config.eosTokenId; })
      .def("encode", [](Engine& e, const std::string& text) { return e.tokens().encode(text); })
      .def("decode", [](Engine& e, const std::vector<int64_t>& ids) { return e.tokens().decode(ids); })
      .def("logits", [](Engine& e, const std::vector<int64_t>& ids) {
             if (ids.empty()) throw Error("ids: expected at least one token; got none");
             auto st = e.model->newState();
             std::vector<float> l;
             for (int64_t t : ids) l = e.model->step(t, st);
             return l;
           }, py::arg("ids"), "the logits after the last of `ids` (fp32, [vocab_size])")
      .def("stream", [](std::shared_ptr<Engine> e, const std::vector<int64_t>& prompt, int64_t maxNew, double temperature,
                        int64_t topK, double topP, uint64_t seed) {
             if (prompt.empty()) throw Error("prompt: expected at least one token; got none");
             if (maxNew < 0) throw Error("max_new_tokens: expected >= 0; got " + std::to_string(maxNew));
             for (int64_t t : prompt)
               if (t < 0 || t >= e->config.vocabSize)
                 throw Error("prompt: token " + std::to_string(t) + " is outside the vocabulary (vocab_size " +
                             std::to_string(e->config.vocabSize) + ")");
             Stream s;
             s.engine = e;
             s.prompt = prompt;
             s.maxNew = maxNew;
             s.sampling = {temperature, topK, topP};
             s.sampling.validate();
             s.rng.seed(seed);
             s.state = e->model->newState();
             return s;
           },
           py::arg("prompt"), py::arg("max_new_tokens") = 32, py::arg("temperature") = 0.0, py::arg("top_k") = 0,
           py::arg("top_p") = 1.0, py::arg("seed") = 0);
}

}  // namespace lina::python
