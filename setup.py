"""Package discovery for setuptools (the rest of the configuration is in pyproject.toml).

Every package under ``labelassist/`` is found automatically, so a new subpackage can never
be left out of the wheel; the napari plugin folder ``napari_plugin/`` is installed under the
import name ``labelassist_napari`` (``package-dir`` in pyproject.toml).
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["labelassist", "labelassist.*"]), "labelassist_napari"])
