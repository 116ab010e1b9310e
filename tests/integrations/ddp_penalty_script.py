"""Run by tests/integrations/test_ddp.py: a user loop with AttributionPenalty, under torchrun or in one process.

Under torchrun each rank takes its half of every batch through a DDP-wrapped model; in one
process (``halves``) the same two halves are stepped one after the other and their losses
averaged, which is what DDP's gradient average computes.
"""

import os
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from mmbalance import AttributionPenalty

scope, out = sys.argv[1], sys.argv[2]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a_enc = nn.Sequential(nn.Linear(8, 16), nn.Tanh())
        self.v_enc = nn.Sequential(nn.Linear(8, 16), nn.Tanh())
        self.head = nn.Sequential(nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, a, v):
        return self.head(torch.cat([self.a_enc(a), self.v_enc(v)], 1))


g = torch.Generator().manual_seed(0)
A, V, Y = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g), torch.randint(0, 2, (16,), generator=g)
torch.manual_seed(0)
net = Net()
if "RANK" in os.environ:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model: nn.Module = nn.parallel.DistributedDataParallel(net)
    halves = [slice(rank * 8, rank * 8 + 8)]
else:
    rank, model, halves = 0, net, [slice(0, 8), slice(8, 16)]
pen = AttributionPenalty(model, modalities=["a", "v"], embedding_layers={"a": net.a_enc, "v": net.v_enc}, scope=scope)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(3):
    opt.zero_grad()
    for part in halves:
        logits, penalty = pen(A[part], V[part], labels=Y[part])
        loss = (F.cross_entropy(logits, Y[part]) + 2.0 * penalty) / len(halves)
        loss.backward()
    opt.step()
if rank == 0:
    torch.save(net.state_dict(), out)
if "RANK" in os.environ:
    dist.destroy_process_group()
