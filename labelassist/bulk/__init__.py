"""Bulk pre-annotation of many images, locally or on a Dask cluster (`preannotate`)."""

from .local import PreannotateWarning, preannotate

__all__ = ["PreannotateWarning", "preannotate"]
