"""Train a many-to-one sequence classifier on rnngen kernels with torch DistributedDataParallel.

    torchrun --standalone --nproc_per_node=2 examples/ddp_classifier.py   # 2 processes, this machine
    python examples/ddp_classifier.py                                 # 1 process, no DDP
    torchrun --nnodes=2 --node_rank=0 --master_addr=HOST --nproc_per_node=2 examples/ddp_classifier.py

The task: each sequence is a noisy sine wave of variable length (8..32 steps); its class is which
of three frequencies made it. The model reads the packed sequences with an rnngen cell (a GRU by
default, any built-in or user-built cell with --cell) and classifies from the last layer's final
state. Every rank builds the same data set, trains on its own shard (DistributedSampler), and DDP
averages the gradients, so all ranks hold the same parameters after each step.
"""
import argparse
import math
import os
import time

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import rnngen.torch

FREQUENCIES = (0.15, 0.3, 0.6)


def make_data(n, seed, max_len=32):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(FREQUENCIES), (n,), generator=g)
    lengths = torch.randint(8, max_len + 1, (n,), generator=g)
    phase = torch.rand(n, 1, generator=g) * 2 * math.pi
    t = torch.arange(max_len).float()
    freq = torch.tensor(FREQUENCIES)[labels].unsqueeze(1)
    x = torch.sin(freq * t * 2 * math.pi * 0.5 + phase) + 0.3 * torch.randn(n, max_len, generator=g)
    x = x * (t < lengths.unsqueeze(1))                       # zero padding past each length
    return TensorDataset(x.unsqueeze(2), lengths, labels)


class Classifier(torch.nn.Module):
    def __init__(self, cell, hidden_size, num_layers):
        super().__init__()
        self.rnn = rnngen.torch.RNN(cell, 1, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = torch.nn.Linear(hidden_size, len(FREQUENCIES))

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        h_n = state[0] if isinstance(state, tuple) else state   # (h_n, c_n) for an LSTM
        return self.head(h_n[-1])                               # the last layer's final state


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="gru")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32, help="per-process batch size")
    ap.add_argument("--train", type=int, default=1024, help="training sequences (all ranks together)")
    args = ap.parse_args()

    distributed = "RANK" in os.environ                      # set by torchrun
    if distributed:
        torch.distributed.init_process_group("gloo")        # CPU tensors: the gloo backend
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world = 0, 1
    torch.set_num_threads(1)                                # tiny model: threads only contend

    torch.manual_seed(0)                                    # same initial weights on every rank
    model = Classifier(args.cell, args.hidden, args.layers)
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)
    train = make_data(args.train, seed=1)
    test = make_data(512, seed=2)
    sampler = DistributedSampler(train, world, rank, seed=0) if distributed else None
    loader = DataLoader(train, batch_size=args.batch, sampler=sampler, shuffle=sampler is None)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        total, count = 0.0, 0
        for x, lengths, labels in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(x, lengths), labels)
            loss.backward()                                 # DDP all-reduces the gradients here
            opt.step()
            total, count = total + loss.item() * len(labels), count + len(labels)
        model.eval()
        with torch.no_grad():
            x, lengths, labels = test.tensors
            accuracy = (model(x, lengths).argmax(1) == labels).float().mean().item()
        if rank == 0:
            print(f"epoch {epoch + 1}: train loss {total / count:.3f}, "
                  f"test accuracy {accuracy:.3f}, {time.perf_counter() - start:.1f} s", flush=True)
    if distributed:
        # every rank holds the same weights: check it, then leave
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        ref = flat.clone()
        torch.distributed.broadcast(ref, 0)
        assert torch.equal(flat, ref), "ranks diverged"
        if rank == 0:
            print(f"{world} processes, parameters identical on every rank")
        torch.distributed.barrier()               # no rank leaves while another still talks
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
