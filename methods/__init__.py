"""Method plugins, one file each. Importing this package registers them."""
from . import baselines, byol, moco_v2, moco_v3, pretrained, simclr  # noqa: F401
