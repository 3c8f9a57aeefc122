#!/usr/bin/env python3
"""A toy language model on lina.ops (two GLA layers and one GSA layer) trained with PyTorch's own
distributed engine: DDP or FSDP (fully_shard), one process per rank, launched with torchrun, on
synthetic packed variable-length batches (B = 1, cu_seqlens).

    torchrun --nproc_per_node=2 bench/distributed/train_toy.py --parallel ddp --steps 300 --out ddp.json
    torchrun --nproc_per_node=2 bench/distributed/train_toy.py --parallel fsdp --check --out check.json

--check also trains the same model on one GPU on the concatenated batches (rank 0, after the
distributed run) and reports (a) after the first step, each parameter's gradient against the
single-GPU gradient on the concatenated batch and (b) both loss curves; it exits non-zero when
they disagree beyond bf16 tolerance. The per-rank loss is a sum over the rank's tokens divided by
the (fixed) tokens per rank, so the ranks' average equals the single-GPU loss on the
concatenation exactly, and any gradient difference is rounding.

--backend gloo with more ranks than GPUs puts several ranks on one GPU (the same code path
without NCCL: what a one-GPU machine can run).
"""
import argparse
import datetime
import json
import os
import socket
import time

# NVLink multicast (NVLS) off for NCCL and symmetric memory: the lent machines do not support it.
os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
os.environ.setdefault("NVSHMEM_DISABLE_NVLS", "1")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lina import ops  # noqa: E402

VOCAB = 256
IGNORE = -100


class Block(torch.nn.Module):
    """Pre-norm token mixing (GLA or GSA on lina.ops) then a pre-norm MLP, both residual."""

    def __init__(self, kind, width, heads, slots):
        super().__init__()
        self.kind, self.heads, self.slots = kind, heads, slots
        extra = 0 if kind == "gla" else 2 * heads * slots - width
        self.norm1 = torch.nn.LayerNorm(width)
        self.proj = torch.nn.Linear(width, 4 * width + extra, bias=False)
        self.out = torch.nn.Linear(width, width, bias=False)
        self.norm2 = torch.nn.LayerNorm(width)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(width, 4 * width), torch.nn.GELU(), torch.nn.Linear(4 * width, width))

    def forward(self, x, cu_seqlens):
        b, t, w = x.shape
        h = self.proj(self.norm1(x))
        if self.kind == "gla":
            q, k, v, g = h.view(b, t, self.heads, 4, -1).unbind(3)
            o, _ = ops.chunk_gla(q, k, v, F.logsigmoid(g) / 16, cu_seqlens=cu_seqlens)
        else:
            qkv, sg = h.split([3 * w, 2 * self.heads * self.slots], -1)
            q, k, v = qkv.view(b, t, self.heads, 3, -1).unbind(3)
            s, g = sg.view(b, t, self.heads, 2, self.slots).unbind(3)
            o, _ = ops.chunk_gsa(q, k, v, s, F.logsigmoid(g), cu_seqlens=cu_seqlens)
        x = x + self.out(o.reshape(b, t, w))
        return x + self.mlp(self.norm2(x))


class ToyLM(torch.nn.Module):
    def __init__(self, width=256, heads=2, slots=32):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, width)
        self.blocks = torch.nn.ModuleList(Block(kind, width, heads, slots) for kind in ("gla", "gla", "gsa"))
        self.norm = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, VOCAB, bias=False)

    def forward(self, ids, cu_seqlens):
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, cu_seqlens)
        return self.head(self.norm(x))


def shard_batch(step, rank, tokens, seed):
    """Rank `rank`'s packed batch at `step`: sequences of random lengths filling exactly `tokens`,
    each following a fixed random bigram table (so there is something to learn). Returns ids
    [1, tokens], targets [1, tokens] (IGNORE at each sequence's last token) and cu_seqlens."""
    table = torch.randint(0, VOCAB, (VOCAB,), generator=torch.Generator().manual_seed(seed)).tolist()
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step * 10_007 + rank)
    lengths = []
    while sum(lengths) < tokens:
        lengths.append(min(int(torch.randint(16, 1024, (1,), generator=gen)), tokens - sum(lengths)))
    noise = (torch.rand(tokens, generator=gen) < 0.1).tolist()
    random = torch.randint(0, VOCAB, (tokens,), generator=gen).tolist()
    ids, targets, start = [], [], 0
    for n in lengths:
        seq = [random[start]]
        for i in range(start + 1, start + n):
            seq.append(random[i] if noise[i] else table[seq[-1]])
        ids += seq
        targets += seq[1:] + [IGNORE]
        start += n
    cu = torch.tensor([0] + lengths).cumsum(0).to(torch.int32)
    return torch.tensor(ids)[None], torch.tensor(targets)[None], cu


def concatenated_batch(step, world, tokens, seed):
    parts = [shard_batch(step, r, tokens, seed) for r in range(world)]
    ids = torch.cat([p[0] for p in parts], 1)
    targets = torch.cat([p[1] for p in parts], 1)
    cus = [parts[0][2]] + [p[2][1:] + r * tokens for r, p in enumerate(parts) if r > 0]
    return ids, targets, torch.cat(cus)


def loss_of(model, batch, tokens_per_rank, device):
    ids, targets, cu = (t.to(device, non_blocking=True) for t in batch)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(ids, cu)
    # A sum over this batch's tokens over a fixed count: the ranks' mean is the global loss.
    loss = F.cross_entropy(logits.float().view(-1, VOCAB), targets.view(-1), ignore_index=IGNORE, reduction="sum")
    return loss / tokens_per_rank


def make_model(seed, device):
    torch.manual_seed(seed)
    return ToyLM().to(device)


def train(model, batches, steps, lr, tokens_per_rank, device, on_first_step=None):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses, times = [], []
    for step in range(steps):
        start = time.perf_counter()
        loss = loss_of(model, batches(step), tokens_per_rank, device)
        loss.backward()
        if step == 0 and on_first_step:
            on_first_step(model)
        clip_grad_norm(model, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return [float(x) for x in torch.stack(losses).cpu()], times


def full_grads(model):
    """Every parameter's gradient as a full CPU tensor. FSDP's gradients are DTensors sharded on
    dim 0; their shards are gathered with plain c10d collectives (DTensor's own full_tensor()
    goes through functional collectives, which crash on gloo with CUDA tensors in torch 2.11)."""
    out = {}
    for name, p in model.named_parameters():
        g = p.grad
        if hasattr(g, "to_local"):
            shards = [None] * dist.get_world_size()
            dist.all_gather_object(shards, g.to_local().detach().float().cpu())
            g = torch.cat(shards, 0)[: g.shape[0]]
        out[name.replace("module.", "")] = g.detach().float().cpu().clone()
    return out


def clip_grad_norm(model, max_norm):
    """torch.nn.utils.clip_grad_norm_ for replicated (DDP) or dim-0-sharded (FSDP) gradients, with
    one c10d all-reduce of the squared norm when sharded (for the same reason as full_grads)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    sharded = any(hasattr(g, "to_local") for g in grads)
    local = [g.to_local() if hasattr(g, "to_local") else g for g in grads]
    square = torch.stack([x.float().square().sum() for x in local]).sum()
    if sharded:
        dist.all_reduce(square)
    coef = (max_norm / (square.sqrt() + 1e-6)).clamp(max=1.0)
    for x in local:
        x.mul_(coef.to(x.dtype))


def relative(a, b):
    return float((a - b).norm() / (b.norm() + 1e-12))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parallel", choices=["ddp", "fsdp"], default="ddp")
    ap.add_argument("--backend", choices=["nccl", "gloo"], default="nccl")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--tokens-per-rank", type=int, default=8192)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="compare with one GPU on the concatenated batches")
    ap.add_argument("--grad-tolerance", type=float, default=2e-2)
    ap.add_argument("--loss-tolerance", type=float, default=0.05)
    ap.add_argument("--out", help="write the figures as JSON here (rank 0)")
    args = ap.parse_args()

    # Long timeout: with --check the other ranks wait while rank 0 trains the single-GPU reference.
    dist.init_process_group(args.backend, timeout=datetime.timedelta(minutes=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", rank))
    gpus = torch.cuda.device_count()
    if args.backend == "nccl" and world > gpus:
        raise SystemExit(f"--backend nccl: {world} ranks need {world} GPUs; this machine has {gpus} "
                         "(use --backend gloo to put several ranks on one GPU)")
    device = torch.device("cuda", local % gpus)
    torch.cuda.set_device(device)

    model = make_model(args.seed, device)
    if args.parallel == "ddp":
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    else:
        from torch.distributed.fsdp import fully_shard
        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)

    grads = {}
    # Made before the clock starts, so tokens/s measures training, not the data generator.
    shards = [shard_batch(step, rank, args.tokens_per_rank, args.seed) for step in range(args.steps)]
    batches = lambda step: shards[step]
    dist.barrier()
    losses, times = train(model, batches, args.steps, args.lr, args.tokens_per_rank, device,
                          on_first_step=lambda m: grads.update(full_grads(m)) if args.check else None)
    # The rank-mean loss per step (what the single-GPU run on the concatenation computes).
    curve = torch.tensor(losses, device=device)
    dist.all_reduce(curve)
    curve = (curve / world).tolist()
    steady = times[min(5, len(times) - 1):]
    tokens_per_s = args.tokens_per_rank / (sum(steady) / len(steady))
    rates = torch.tensor([tokens_per_s], device=device)
    dist.all_reduce(rates)

    result = None
    if rank == 0:
        result = dict(parallel=args.parallel, backend=args.backend, world=world, gpus_used=min(world, gpus),
                      device=torch.cuda.get_device_name(device), host=socket.gethostname(),
                      steps=args.steps, tokens_per_rank=args.tokens_per_rank, torch=torch.__version__,
                      tokens_per_s_per_rank=float(rates[0]) / world, tokens_per_s_total=float(rates[0]),
                      loss_first=curve[0], loss_last=curve[-1], loss_curve=curve)
    if args.check and rank == 0:
        single = make_model(args.seed, device)
        ref = {}
        whole = [concatenated_batch(step, world, args.tokens_per_rank, args.seed) for step in range(args.steps)]
        ref_losses, _ = train(single, lambda step: whole[step],
                              args.steps, args.lr, args.tokens_per_rank * world, device,
                              on_first_step=lambda m: ref.update(full_grads(m)))
        # The single-GPU loss is normalized by world x tokens per rank: the ranks' mean loss.
        grad_error = {n: relative(grads[n], ref[n]) for n in ref}
        loss_diff = [abs(a - b) for a, b in zip(curve, ref_losses)]
        result.update(single_gpu_loss_curve=ref_losses, grad_relative_error=grad_error,
                      grad_relative_error_max=max(grad_error.values()), loss_abs_diff_max=max(loss_diff),
                      loss_abs_diff_mean=sum(loss_diff) / len(loss_diff),
                      passed=max(grad_error.values()) <= args.grad_tolerance
                      and sum(loss_diff) / len(loss_diff) <= args.loss_tolerance)
    if rank == 0:
        summary = {k: v for k, v in result.items() if "curve" not in k and k != "grad_relative_error"}
        print(json.dumps(summary, indent=1), flush=True)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(result, f, indent=1)
    dist.barrier()
    dist.destroy_process_group()
    if result is not None and result.get("passed") is False:
        raise SystemExit("gradients or loss curve disagree with the single-GPU run beyond tolerance")


if __name__ == "__main__":
    main()
