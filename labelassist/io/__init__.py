"""Files in and out: reading images, finding image files, atomic writes."""

from .atomic import atomic_write
from .image import IMAGE_SUFFIXES, check_image, read_image
from .paths import collect_image_paths

__all__ = ["IMAGE_SUFFIXES", "atomic_write", "check_image", "collect_image_paths", "read_image"]
