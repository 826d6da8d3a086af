"""The version of labelassist (read by setuptools for the distribution, too)."""

__version__ = "0.1.0"
