"""Evaluation protocol plugins, one file each. Importing this package registers them."""
from . import knn, linear  # noqa: F401
from . import linear_sgd  # noqa: F401
from . import semi_supervised  # noqa: F401
from . import transfer  # noqa: F401
