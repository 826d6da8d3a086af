"""The example scripts the README points to run as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_quickstart_predicts_the_real_image(tmp_path):
    stdout = _run(EXAMPLES / "quickstart.py", tmp_path / "out", cwd=tmp_path)
    coco = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert len(coco["annotations"]) > 50  # 125 hand-labelled nuclei in the image
    ap50 = float(stdout.split("mask AP50 ")[1].split(",")[0])
    assert ap50 > 0.7
    overlay = iio.imread(tmp_path / "out" / "overlay.png")
    assert overlay.shape[:2] == (512, 512) and overlay.ndim == 3


def test_synthetic_gallery_writes_a_picture(tmp_path):
    _run(EXAMPLES / "synthetic_gallery.py", tmp_path, "--n-images", "2", "--shift", cwd=tmp_path)
    picture = iio.imread(tmp_path / "synthetic_gallery.png")
    assert picture.ndim == 3 and np.ptp(picture) > 100  # not blank
