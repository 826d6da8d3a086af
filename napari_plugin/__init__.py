"""labelassist napari plugin (import name ``labelassist_napari``).

Dock widgets to pre-annotate images with a labelassist model, review and correct the
proposals as editable polygons, and train the next round; a reader and writer for
labelassist projects and COCO files; sample data. The contributions are declared in
``napari.yaml`` and imported lazily by napari, so importing this package is cheap.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
