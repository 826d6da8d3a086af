"""Fixtures for the napari plugin tests (run GUI tests under ``xvfb-run -a``)."""

from __future__ import annotations

import sys
from pathlib import Path

# the shared shape gallery lives in tests/
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
