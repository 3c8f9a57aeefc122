#!/usr/bin/env python3
"""Does FSDP (fully_shard) run on this backend at all, without lina? One Linear layer, one step.
    python3 -m torch.distributed.run --standalone --nproc_per_node=2 bench/distributed/fsdp_backend_probe.py gloo
Used to tell a backend limitation from a lina bug when train_toy.py --parallel fsdp fails."""
import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

dist.init_process_group(sys.argv[1] if len(sys.argv) > 1 else "nccl")
torch.cuda.set_device(0 if torch.cuda.device_count() == 1 else dist.get_rank())
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 1)).cuda()
fully_shard(model)
loss = model(torch.randn(8, 64, device="cuda")).square().sum()
loss.backward()
print(f"rank {dist.get_rank()}: fsdp step ok on {sys.argv[1:]}", flush=True)
dist.destroy_process_group()
