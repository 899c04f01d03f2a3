"""Evaluation protocol plugins, one file each. Importing this package registers them."""
from . import knn, linear  # noqa: F401
