"""lina.Runner: generation from a GLA / RetNet / GSA checkpoint in fla's layout, on lina's model
runner: its GPU engine (cuBLAS projections, lina's kernels, CUDA-graph decode, a batch of
prompts at once) where there is a GPU, else its CPU engine (fp32 blocks one token at a time), as
`lina-run` runs them.

    runner = lina.Runner("path/to/model")                # config.json + model.safetensors (+ tokenizer.model)
    ids = runner.generate([1, 450, 4996], max_new_tokens=32)          # greedy
    for token in runner.generate("Once upon a time", stream=True, temperature=0.8, top_p=0.9, seed=1):
        ...
    texts = runner.generate(["Once upon a time", "The capital of"], max_new_tokens=16)   # a batch
"""
import queue
import threading

from . import _lina


def init_checkpoint(config, out_dir, dtype="bf16", seed=0):
    """Writes a random checkpoint of config.json `config` (e.g. library/models/gla-340M.json) to
    `out_dir`, initialised as fla initialises a model (`lina-run --init`)."""
    if not hasattr(_lina, "init_checkpoint"):
        raise _lina.LinaError("lina.init_checkpoint: this build has no model runner")
    _lina.init_checkpoint(str(config), str(out_dir), dtype, int(seed))


def _device_of(device):
    """'cpu', or the CUDA ordinal of 'cuda' / 'cuda:N'; 'auto' is cuda:0 when a GPU is usable."""
    if device == "auto":
        from . import cuda_available
        return 0 if hasattr(_lina, "GpuRunner") and cuda_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if isinstance(device, str) and (device == "cuda" or device.startswith("cuda:")):
        index = device[5:] if device.startswith("cuda:") else "0"
        if index.isdigit():
            return int(index)
    raise _lina.LinaError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}")


def _model_type(model_dir):
    import json
    import os
    try:
        with open(os.path.join(os.fspath(model_dir), "config.json"), encoding="utf-8") as f:
            return json.load(f).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None  # the engine reports what is wrong with the folder


class Runner:
    def __init__(self, model_dir, device="auto", dtype="bf16", max_batch=64, graphs=True):
        """`device`: 'auto' (the GPU engine when a GPU is usable, else the CPU one), 'cpu', 'cuda'
        or 'cuda:N'. `dtype` (bf16 | fp16 | fp32), `max_batch` (sequences decoded together) and
        `graphs` (CUDA-graph decode) are the GPU engine's; the CPU engine computes in fp32."""
        if not hasattr(_lina, "CpuRunner"):
            raise _lina.LinaError("lina.Runner: this build has no model runner (it needs nlohmann-json at build time; "
                                  "scripts/setup.sh installs it)")
        where = _device_of(device)
        if device == "auto" and where != "cpu" and _model_type(model_dir) == "rwkv6":
            where = "cpu"  # RWKV6 has no GPU runner yet
        if where == "cpu":
            self._engine = _lina.CpuRunner(str(model_dir))
            self.device = "cpu"
        else:
            if not hasattr(_lina, "GpuRunner"):
                raise _lina.LinaError("lina.Runner(device='cuda'): this build has no GPU model runner; use device='cpu'")
            self._engine = _lina.GpuRunner(str(model_dir), dtype=dtype, max_batch=int(max_batch), graphs=bool(graphs),
                                           device=where)
            self.device = f"cuda:{where}"
        self.model_type = self._engine.model_type
        self.vocab_size = self._engine.vocab_size
        self.last_stats = None  # the GPU engine's timings of the last generate

    def encode(self, text):
        """Token ids of `text` with the directory's tokenizer.model, BOS first."""
        return [self._engine.bos_token_id] + list(self._engine.encode(text))

    def decode(self, ids):
        return self._engine.decode(list(ids))

    def logits(self, ids):
        """The fp32 logits after the last of `ids` (a list of vocab_size floats)."""
        if self.device == "cpu":
            return self._engine.logits(list(ids))
        return self._engine.logits([list(ids)])[0]

    def generate(self, prompt, max_new_tokens=32, temperature=0.0, top_k=0, top_p=1.0, seed=0, stream=False, stop=None):
        """New token ids after `prompt` (token ids, or text for the directory's tokenizer), stopping
        after the EOS id, or after the token whose decoded continuation contains one of `stop` (a
        string or a list of them; needs the tokenizer; that token is kept). Greedy at temperature
        0; else temperature, top-k, top-p sampling from `seed`. `stream=True` returns an iterator
        that yields each id as it is decoded; with a text prompt, generate returns the decoded
        text (stream: text pieces). A list of prompts (lists of ids, or texts) is a batch: one
        result per prompt (the GPU engine decodes them together), not streamed."""
        batch = isinstance(prompt, (list, tuple)) and len(prompt) > 0 and not isinstance(prompt[0], int)
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if any(not isinstance(s, str) or not s for s in stops):
            raise _lina.LinaError(f"stop: expected non-empty strings; got {stop!r}")
        if stops:
            self.decode([])  # the tokenizer, or its error, before any token is drawn
        if batch:
            if stream:
                raise _lina.LinaError("generate: stream=True takes one prompt; got a batch of " + str(len(prompt)))
            texts = [isinstance(p, str) for p in prompt]
            ids = [self.encode(p) if t else [int(x) for x in p] for p, t in zip(prompt, texts)]
            outs = self._batch(ids, max_new_tokens, temperature, top_k, top_p, seed, stops)
            return [self.decode(o) if t else o for o, t in zip(outs, texts)]
        text = isinstance(prompt, str)
        ids = self.encode(prompt) if text else [int(t) for t in prompt]
        if self.device == "cpu":
            it = self._engine.stream(ids, max_new_tokens, temperature, top_k, top_p, seed)
            if stops:
                it = self._until_stop(it, stops)
        elif stream:
            it = self._gpu_stream(ids, max_new_tokens, temperature, top_k, top_p, seed, stops)
        else:
            it = iter(self._batch([ids], max_new_tokens, temperature, top_k, top_p, seed, stops)[0])
        if not stream:
            out = list(it)
            return self.decode(out) if text else out
        if not text:
            return it
        return self._text_pieces(it)

    def _stop_check(self, stops):
        """on_token for the GPU engine: True once a sequence's continuation holds a stop string."""
        done = {}

        def on_token(n, token):
            done.setdefault(n, []).append(token)
            return bool(stops) and any(s in self.decode(done[n]) for s in stops)
        return on_token

    def _batch(self, prompts, max_new_tokens, temperature, top_k, top_p, seed, stops):
        if self.device == "cpu":
            outs = []
            for ids in prompts:
                it = self._engine.stream(ids, max_new_tokens, temperature, top_k, top_p, seed)
                outs.append(list(self._until_stop(it, stops) if stops else it))
            return outs
        if max_new_tokens == 0:
            return [[] for _ in prompts]
        tokens, self.last_stats = self._engine.generate(prompts, max_new_tokens, temperature, top_k, top_p, seed, True,
                                                        self._stop_check(stops) if stops else None)
        return [list(t) for t in tokens]

    def _gpu_stream(self, ids, max_new_tokens, temperature, top_k, top_p, seed, stops):
        """The GPU engine in a thread, its tokens handed over as it draws them."""
        if max_new_tokens == 0:
            return
        items = queue.Queue()
        end = object()
        check = self._stop_check(stops)

        def on_token(n, token):
            items.put(token)
            return check(n, token)

        def run():
            try:
                _, self.last_stats = self._engine.generate([ids], max_new_tokens, temperature, top_k, top_p, seed, True,
                                                           on_token)
                items.put(end)
            except BaseException as e:  # raised again in the consumer
                items.put(e)

        threading.Thread(target=run, daemon=True).start()
        while True:
            item = items.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _until_stop(self, it, stops):
        done = []
        for token in it:
            done.append(token)
            yield token
            text = self.decode(done)
            if any(s in text for s in stops):
                return

    def _text_pieces(self, it):
        done, shown = [], ""
        for token in it:
            done.append(token)
            now = self.decode(done)
            yield now[len(shown):]
            shown = now
