"""Package discovery for setuptools (the rest of the configuration is in pyproject.toml).

Every package under ``labelassist/`` is found automatically, so a new subpackage can never
be left out of the wheel; ``labelassist/data/`` (no ``__init__.py``: the shipped model and
sample images) is a data package; the napari plugin folder ``napari_plugin/`` is installed
under the import name ``labelassist_napari`` (``package-dir`` in pyproject.toml).
``tests/test_wheel.py`` checks that the built wheel holds every file of the source tree.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["labelassist", "labelassist.*"]),
        "labelassist.data",
        "labelassist_napari",
    ]
)
