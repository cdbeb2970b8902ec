"""Worker for test_ddp.py: trains a small many-to-one classifier for a few steps, either alone on the
global batch (`python ddp_worker.py single OUT`) or as one rank of torch DDP on its half of it
(`python ddp_worker.py ddp OUT`, with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set)."""
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

import rnngen.torch

STEPS = 4
LENGTHS = [6, 3, 5, 2, 6, 4, 1, 5]


def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(len(LENGTHS), max(LENGTHS), 3, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (len(LENGTHS),), generator=g)
    return x, torch.tensor(LENGTHS), labels


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = rnngen.torch.RNN("lstm", 3, 4, num_layers=2, bidirectional=True, batch_first=True,
                                    dtype=torch.float64)
        self.head = torch.nn.Linear(8, 3).double()

    def forward(self, x, lengths):
        _, (h_n, c_n) = self.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        return self.head(torch.cat([h_n[-2], h_n[-1]], dim=1))   # last layer, both directions


def train(model, x, lengths, labels):
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(STEPS):
        opt.zero_grad()
        F.cross_entropy(model(x, lengths), labels).backward()
        opt.step()


def main(mode, out):
    torch.manual_seed(1)
    model = Classifier()
    x, lengths, labels = batch()
    if mode == "single":
        train(model, x, lengths, labels)
        torch.save(model.state_dict(), out)
        return
    torch.distributed.init_process_group("gloo")
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    share = slice(rank * len(LENGTHS) // world, (rank + 1) * len(LENGTHS) // world)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    train(ddp, x[share], lengths[share], labels[share])
    torch.save(model.state_dict(), f"{out}.rank{rank}")
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
