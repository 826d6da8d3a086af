"""Files in and out: reading images and stacks, finding image files, atomic writes."""

from .atomic import TempFile, atomic_write, remove_stale_temp_files
from .image import IMAGE_SUFFIXES, check_image, pixel_limit, read_image
from .paths import collect_image_paths
from .stack import STACK_AXES, read_stack, stack_axes

__all__ = [
    "IMAGE_SUFFIXES",
    "STACK_AXES",
    "TempFile",
    "atomic_write",
    "check_image",
    "collect_image_paths",
    "pixel_limit",
    "read_image",
    "read_stack",
    "remove_stale_temp_files",
    "stack_axes",
]
