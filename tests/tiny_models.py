"""Tiny untrained Mask R-CNN models, a quick training configuration and a one-thread fixture.

The light architecture, slimmed down so that a training step on a 64 px image takes well
under a second on a CPU. Test files import it (``tests/`` is on ``sys.path``)::

    from tiny_models import fast_config, one_thread, tiny_model  # noqa: F401 (autouse fixture)
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from labelassist.model import Model, build_maskrcnn
from labelassist.train import TrainConfig

__all__ = ["ARCH", "TINY", "fast_config", "one_thread", "tiny_model"]

ARCH = "maskrcnn_resnet18_fpn"
TINY = {
    "fpn_channels": 32,
    "representation_size": 64,
    "mask_channels": 16,
    "mask_layers": 1,
    "box_detections_per_img": 50,
}


def tiny_model(classes: Sequence[str] = ("nucleus",), *, seed: int = 0) -> Model:
    """An untrained `TINY` model on the CPU, its weights drawn after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    net = build_maskrcnn(ARCH, len(classes) + 1, **TINY)
    return Model(net, list(classes), arch=ARCH, options=TINY, device="cpu")


def fast_config(**changes) -> TrainConfig:
    """A quick training configuration: no workers, short warm-up, fixed seed; ``changes``
    override it."""
    base = dict(
        num_workers=0,
        warmup_iters=1,
        batch_size=2,
        augment=0.0,
        seed=0,
        roi_samples=32,
        rpn_proposals=100,
    )
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared, busy CPU more threads make training much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
