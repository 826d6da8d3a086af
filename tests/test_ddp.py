"""`finetune` under DistributedDataParallel: 2 CPU processes on gloo, as torchrun starts them.

Each process gets the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT) and calls `finetune`, which joins the process group itself.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from tiny_models import fast_config, tiny_model

from labelassist.model import load_model
from labelassist.synthetic import synthetic_nuclei
from labelassist.train import finetune


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, results: str) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    model = tiny_model(seed=100 + rank)  # different initial weights: DDP must broadcast rank 0's
    pairs = [synthetic_nuclei((64, 64), n=3, radius=(5, 8), seed=s) for s in range(4)]
    config = fast_config(batch_size=1, augment=1.0)
    result = finetune(model, pairs, epochs=2, lr=0.01, out=out, progress=False, config=config)
    state = {k: v.detach().clone() for k, v in result.model.net.state_dict().items()}
    torch.save(
        {"state": state, "history": result.history, "checkpoint": str(result.checkpoint)},
        Path(results) / f"rank{rank}.pt",
    )


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_identical_with_one_checkpoint(tmp_path):
    out, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(out), str(results)), nprocs=2, join=True)
    r0 = torch.load(results / "rank0.pt", weights_only=True)
    r1 = torch.load(results / "rank1.pt", weights_only=True)
    assert r0["state"].keys() == r1["state"].keys()
    for name, value in r0["state"].items():
        torch.testing.assert_close(r1["state"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    # each rank trained on its half of the 4 images: 2 iterations per epoch
    assert [h["iterations"] for h in r0["history"]] == [2, 2]
    # only rank 0 wrote, one checkpoint pair, and it holds the synchronised weights
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "last.state.pt"]
    assert r0["checkpoint"] == str(out / "last.pt") and r1["checkpoint"] == str(out / "last.pt")
    saved = load_model(out / "last.pt", device="cpu").net.state_dict()
    for name, value in r0["state"].items():
        torch.testing.assert_close(saved[name], value, msg=name)
