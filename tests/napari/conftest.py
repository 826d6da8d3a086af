"""Fixtures for the napari plugin tests (run GUI tests under ``xvfb-run -a``)."""

from __future__ import annotations

import sys
from pathlib import Path

# the shared shape gallery lives in tests/
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# torchvision imports torch._dynamo, which loads triton's LLVM when triton is installed.
# Loaded after a viewer created its OpenGL context, that crashes with Mesa's llvmpipe
# (Xvfb). Import it once here, before any viewer exists, so that the test order does not
# matter; the plugin's own guard for late imports is tested in a subprocess
# (test_plugin.py::test_late_torch_import_next_to_a_viewer_does_not_crash).
import torchvision.ops  # noqa: E402, F401
