"""ssl-bench: a plugin-based benchmarking suite for self-supervised image representation learning."""
__version__ = "0.1.0"

from ssl_bench import _moved

_moved.install()  # old module paths (before the sub-packages) keep importing
