"""lina.Runner: generation from a GLA / RetNet / GSA checkpoint in fla's layout, on lina's model
runner (today its CPU engine: fp32 blocks one token at a time, as `lina-run` runs them).

    runner = lina.Runner("path/to/model")                # config.json + model.safetensors (+ tokenizer.model)
    ids = runner.generate([1, 450, 4996], max_new_tokens=32)          # greedy
    for token in runner.generate("Once upon a time", stream=True, temperature=0.8, top_p=0.9, seed=1):
        ...
"""
from . import _lina


def init_checkpoint(config, out_dir, dtype="bf16", seed=0):
    """Writes a random checkpoint of config.json `config` (e.g. library/models/gla-340M.json) to
    `out_dir`, initialised as fla initialises a model (`lina-run --init`)."""
    if not hasattr(_lina, "init_checkpoint"):
        raise _lina.LinaError("lina.init_checkpoint: this build has no model runner")
    _lina.init_checkpoint(str(config), str(out_dir), dtype, int(seed))


class Runner:
    def __init__(self, model_dir):
        if not hasattr(_lina, "CpuRunner"):
            raise _lina.LinaError("lina.Runner: this build has no model runner (it needs nlohmann-json at build time; "
                                  "scripts/setup.sh installs it)")
        self._engine = _lina.CpuRunner(str(model_dir))
        self.model_type = self._engine.model_type
        self.vocab_size = self._engine.vocab_size

    def encode(self, text):
        """Token ids of `text` with the directory's tokenizer.model, BOS first."""
        return [self._engine.bos_token_id] + list(self._engine.encode(text))

    def decode(self, ids):
        return self._engine.decode(list(ids))

    def logits(self, ids):
        """The fp32 logits after the last of `ids` (a list of vocab_size floats)."""
        return self._engine.logits(list(ids))

    def generate(self, prompt, max_new_tokens=32, temperature=0.0, top_k=0, top_p=1.0, seed=0, stream=False, stop=None):
        """New token ids after `prompt` (token ids, or text for the directory's tokenizer), stopping
        after the EOS id, or after the token whose decoded continuation contains one of `stop` (a
        string or a list of them; needs the tokenizer; that token is kept). Greedy at temperature
        0; else temperature, top-k, top-p sampling from `seed`. `stream=True` returns an iterator
        that yields each id as it is decoded; with a text prompt, generate returns the decoded
        text (stream: text pieces)."""
        text = isinstance(prompt, str)
        ids = self.encode(prompt) if text else [int(t) for t in prompt]
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if any(not isinstance(s, str) or not s for s in stops):
            raise _lina.LinaError(f"stop: expected non-empty strings; got {stop!r}")
        if stops:
            self.decode([])  # the tokenizer, or its error, before any token is drawn
        it = self._engine.stream(ids, max_new_tokens, temperature, top_k, top_p, seed)
        if stops:
            it = self._until_stop(it, stops)
        if not stream:
            out = list(it)
            return self.decode(out) if text else out
        if not text:
            return it
        return self._text_pieces(it)

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
