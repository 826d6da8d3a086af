"""DistributedDataParallel helpers: the process group torchrun describes, and what ranks share.

Under ``torchrun`` every process calls `finetune`; `process_group` joins the group that
the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...) describes,
and leaves it at the end. Without that environment everything here is a no-op on one
process (rank 0 of 1).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data.distributed import DistributedSampler

__all__ = [
    "Group",
    "distributed_sampler",
    "process_group",
    "stop_requested",
    "sync_buffers",
    "wrap",
]


@dataclass(frozen=True)
class Group:
    """This process in the run: its ``rank`` of ``world`` processes and its ``device``."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Whether this process writes checkpoints, validates and shows progress."""
        return self.rank == 0


@contextmanager
def process_group(device: torch.device) -> Iterator[Group]:
    """Join the process group torchrun describes (unless one is initialised already) for
    the block; leave it afterwards if this call joined it. Under DDP on CUDA the device
    becomes ``cuda:LOCAL_RANK``."""
    owns = False
    rank, world = 0, 1
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    elif (
        dist.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ
    ):
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        rank, world, owns = dist.get_rank(), dist.get_world_size(), True
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    try:
        yield Group(rank=rank, world=world, device=device)
    finally:
        if owns:
            dist.barrier()
            dist.destroy_process_group()


def distributed_sampler(
    dataset: TorchDataset[Any], group: Group, seed: int
) -> DistributedSampler[Any] | None:
    """Each rank's share of ``dataset`` (None on one process)."""
    if group.world <= 1:
        return None
    return DistributedSampler(dataset, num_replicas=group.world, rank=group.rank, seed=seed)


def wrap(net: torch.nn.Module, group: Group) -> torch.nn.Module:
    """``net`` in DistributedDataParallel under DDP (rank 0's weights are broadcast)."""
    if group.world <= 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    device = group.device
    return DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None
    )


def sync_buffers(net: torch.nn.Module, group: Group) -> None:
    """Give every rank rank 0's buffers (batch-norm statistics drift apart per rank)."""
    if group.world <= 1:
        return
    for buf in net.buffers():
        dist.broadcast(buf.data, src=0)


def stop_requested(
    callback: Callable[[dict[str, Any]], bool | None] | None,
    record: dict[str, Any],
    group: Group,
) -> bool:
    """Rank 0 asks ``callback`` (False means stop); under DDP every rank learns the answer."""
    stop = bool(callback is not None and group.main and callback(dict(record)) is False)
    if group.world > 1:
        flag = torch.tensor([int(stop)], device=group.device)
        dist.broadcast(flag, src=0)
        stop = bool(flag.item())
    return stop
