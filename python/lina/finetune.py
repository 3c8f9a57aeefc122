"""Fine-tuning recipe: python -m lina.finetune --model DIR --data FILE --output DIR [...]

Continues training a GLA / RetNet / GSA / RWKV6 checkpoint (fla's layout, e.g. one that
lina-convert made from Llama or Mistral) on lina.models, with the settings of the GLA/GSA
Mistral conversions (peak learning rate 3e-5, 1000 warm-up steps, cosine decay, AdamW, bf16):
- documents are packed into rows of --seq-len tokens with cu_seqlens (no padding; no token
  attends across a document boundary or predicts the next document's first token);
- --grad-accum micro-batches per optimizer step, every token weighted equally;
- --save-every steps (and at the end) a checkpoint in --output (the model in fla's layout plus
  trainer.pt: optimizer, schedule, step, data position, RNG), which --resume continues from;
- a progress line with the loss, learning rate and tokens/s.
Data: a text file (documents separated by blank lines; --one-doc-per-line for one per line) or a
dataset from the `datasets` library (--dataset NAME [--dataset-config C] [--split S]
[--text-field text]). Tokenizer: the checkpoint folder's (transformers' AutoTokenizer), or
--tokenizer bytes (UTF-8 bytes + 3, BOS 1, EOS 2) for models whose vocabulary has >= 259 ids."""
import argparse
import math
import os
import sys
import time

from ._lina import LinaError


def _documents(args):
    if args.dataset:
        try:
            import datasets
        except ImportError:
            raise LinaError("--dataset needs the datasets package; pip install datasets, or pass --data FILE") from None
        data = datasets.load_dataset(args.dataset, args.dataset_config, split=args.split, streaming=True)
        for row in data:
            if args.text_field not in row:
                raise LinaError(f"--text-field: '{args.text_field}' is not a column of {args.dataset}; "
                                f"columns: {', '.join(row)}")
            yield row[args.text_field]
        return
    try:
        with open(args.data, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise LinaError(f"--data: cannot read '{args.data}' ({e.strerror}); pass a UTF-8 text file") from None
    parts = text.split("\n") if args.one_doc_per_line else text.split("\n\n")
    for part in parts:
        if part.strip():
            yield part.strip()


class _ByteTokenizer:
    bos, eos = 1, 2

    def encode(self, text):
        return [self.bos] + [b + 3 for b in text.encode("utf-8")] + [self.eos]


class _HFTokenizer:
    def __init__(self, folder):
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise LinaError("the checkpoint's tokenizer needs transformers; pip install transformers, "
                            "or pass --tokenizer bytes") from None
        try:
            self.tok = AutoTokenizer.from_pretrained(folder)
        except Exception as e:
            raise LinaError(f"--model: no usable tokenizer in '{folder}' ({e}); pass --tokenizer DIR or bytes") from None

    def encode(self, text):
        ids = self.tok(text)["input_ids"]
        if self.tok.eos_token_id is not None:
            ids = ids + [self.tok.eos_token_id]
        return ids


def packed_rows(docs, tokenizer, seq_len, vocab_size):
    """Yields (ids [seq_len], cu_seqlens) rows: documents back to back, a long one split across
    rows; the last partial row is dropped."""
    ids, bounds = [], [0]
    for text in docs:
        tokens = tokenizer.encode(text)
        if tokens and max(tokens) >= vocab_size:
            raise LinaError(f"tokenizer: id {max(tokens)} >= the model's vocab_size {vocab_size}; "
                            "use the checkpoint's own tokenizer")
        while tokens:
            room = seq_len - len(ids)
            ids += tokens[:room]
            tokens = tokens[room:]
            bounds.append(len(ids))
            if len(ids) == seq_len:
                yield ids, bounds
                ids, bounds = [], [0]


def lr_at(step, peak, warmup, total, min_ratio):
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m lina.finetune", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="checkpoint folder (config.json + safetensors)")
    p.add_argument("--output", required=True, help="folder for checkpoints (and --resume)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="a UTF-8 text file")
    src.add_argument("--dataset", help="a datasets library dataset name")
    p.add_argument("--dataset-config")
    p.add_argument("--split", default="train")
    p.add_argument("--text-field", default="text")
    p.add_argument("--one-doc-per-line", action="store_true")
    p.add_argument("--tokenizer", default=None, help="a tokenizer folder, or 'bytes' (default: the model folder's)")
    p.add_argument("--seq-len", type=int, default=2048, help="tokens per packed row")
    p.add_argument("--batch", type=int, default=1, help="packed rows per micro-batch")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps")
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--min-lr-ratio", type=float, default=0.0, help="cosine decay floor, a fraction of --lr")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--betas", default="0.9,0.95")
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clip (0: off)")
    p.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16", help="autocast dtype (weights stay fp32)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--save-every", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from --output's last checkpoint")
    p.add_argument("--stop-after", type=int, default=0,
                   help="save and stop after this many steps of this run (a time-limited job); --resume continues")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=1)
    args = p.parse_args(argv)
    for name in ("seq_len", "batch", "grad_accum", "steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}: expected a positive integer; got {getattr(args, name)}")
    if args.warmup < 0 or args.lr <= 0:
        p.error(f"--warmup >= 0 and --lr > 0 expected; got --warmup {args.warmup} --lr {args.lr}")
    try:
        args.betas = tuple(float(b) for b in args.betas.split(","))
        assert len(args.betas) == 2
    except (ValueError, AssertionError):
        p.error(f"--betas: expected two numbers like 0.9,0.95; got {args.betas}")
    return args


def _progress(step, total, loss, lr, tps):
    width = 30
    done = int(width * step / total)
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] step {step}/{total}  loss {loss:.4f}  lr {lr:.2e}  "
                     f"{tps:,.0f} tok/s")
    sys.stderr.flush()


def train(args):
    import torch
    from .models import AutoModelForCausalLM
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.manual_seed(args.seed)
    state_path = os.path.join(args.output, "trainer.pt")
    start_folder = args.output if args.resume else args.model
    if args.resume and not os.path.exists(state_path):
        raise LinaError(f"--resume: no checkpoint in '{args.output}' (trainer.pt missing); run without --resume first")
    model = AutoModelForCausalLM.from_pretrained(start_folder, dtype=torch.float32, device=device)
    model.train()
    tok_folder = args.tokenizer or args.model
    tokenizer = _ByteTokenizer() if args.tokenizer == "bytes" else _HFTokenizer(tok_folder)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=args.betas)
    step, rows_seen = 0, 0
    if args.resume:
        saved = torch.load(state_path, map_location=device, weights_only=False)
        opt.load_state_dict(saved["optimizer"])
        step, rows_seen = saved["step"], saved["rows_seen"]
        torch.set_rng_state(saved["rng"])
    rows = packed_rows(_documents(args), tokenizer, args.seq_len, model.config.vocab_size)
    for _ in range(rows_seen):  # the data position: the same rows are never trained on twice
        next(rows, None)
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    tokens_done, t0, losses = 0, time.time(), []
    last_loss = float("nan")

    def save():
        model.save_pretrained(args.output)
        tmp = state_path + ".tmp"
        torch.save({"optimizer": opt.state_dict(), "step": step, "rows_seen": rows_seen, "rng": torch.get_rng_state()},
                   tmp)
        os.replace(tmp, state_path)

    stop_at = min(args.steps, step + args.stop_after) if args.stop_after > 0 else args.steps
    while step < stop_at:
        micro = []
        for _ in range(args.grad_accum * args.batch):
            row = next(rows, None)
            if row is None:
                break
            micro.append(row)
        if len(micro) < args.grad_accum * args.batch:
            sys.stderr.write(f"\nthe data ran out after {rows_seen} rows (step {step}); stopping\n")
            break
        rows_seen += len(micro)
        lr = lr_at(step, args.lr, args.warmup, args.steps, args.min_lr_ratio)
        for group in opt.param_groups:
            group["lr"] = lr
        # Every predicted token of the optimizer step weighs the same, however the rows split.
        n_items = sum(len(ids) - (len(b) - 1) for ids, b in micro)
        total = 0.0
        for ids, bounds in micro:
            x = torch.tensor([ids], device=device)
            cu = torch.tensor(bounds, dtype=torch.int32, device=device)
            with autocast:
                loss = model(x, cu_seqlens=cu, labels=x, num_items_in_batch=n_items).loss
            loss.backward()
            total += loss.item()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        tokens_done += sum(len(ids) for ids, _ in micro)
        last_loss = total
        losses.append(total)
        if step % args.log_every == 0 or step == args.steps:
            _progress(step, args.steps, total, lr, tokens_done / max(1e-9, time.time() - t0))
        if args.save_every and step % args.save_every == 0:
            save()
    save()
    sys.stderr.write("\n")
    print(f"trained {step} steps, {tokens_done} tokens this run; last loss {last_loss:.4f}; saved to {args.output}")
    return losses


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    try:
        train(args)
    except LinaError as e:
        sys.stderr.write(f"lina.finetune: error: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
