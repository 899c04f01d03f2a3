"""Datasets that published rows name but ssl-bench ships no loader for (ImageNet: use image_folder): declared
(label, headline metric, table order) so that tables label and order them and published rows validate against
the registry. A suite naming one is told to read it as a labelled folder: `name: image_folder, label: imagenet`
(config.checks.check_dataset_loader)."""
from __future__ import annotations

from ssl_bench.registry import declare_dataset

declare_dataset("imagenet", label="ImageNet", order=0)  # BYOL Tables 1-2: pretraining and its own evaluations
declare_dataset("imagenette", label="Imagenette")  # lightly's Imagenette benchmark rows (results/published)
