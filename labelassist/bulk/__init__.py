"""Bulk pre-annotation of many images, locally or on a Dask cluster (`preannotate`).

Modules: ``sources`` (what ``images`` names, decoding one image), ``batch`` (predicting a
batch, a bad image failing alone), ``local`` (the decoding-worker loop), ``cluster`` (the
Dask mapping), ``output`` (collecting, saving to ``out``, resuming) and ``run``
(`preannotate`, putting them together).
"""

from .output import PreannotateResult
from .run import preannotate
from .sources import ImageSource, PreannotateWarning, collect_sources

__all__ = [
    "ImageSource",
    "PreannotateResult",
    "PreannotateWarning",
    "collect_sources",
    "preannotate",
]
