"""Generated data for the benchmark configs that have no offline dataset here.

- `jpeg_folder(n)`: an ImageNet-layout folder (train/<class>/*.jpg plus a small val/) of JPEGs of mixed sizes,
  written once to a cache dir under the system temp dir. Image i depends only on (seed, i), so a folder made
  for n images is the prefix of one made for more, and a later, larger run only adds files.
- `synthetic_cifar()`: 50,000 x 3 x 32 x 32 uint8 in memory (CIFAR-10's train shape), uniform noise.

Content does not change speed here: every augmentation op and the model cost the same on any pixels; only the
JPEG decode depends on content, so the JPEGs get photo-like file sizes (smooth colour fields plus grain).
"""
from __future__ import annotations

import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

VERSION = 1  # bump when the images change, so old caches are not mixed with new ones
CLASSES = 10
VAL_PER_CLASS = 2
WIDTHS, HEIGHTS = (200, 500), (150, 400)  # inclusive ranges of the image sizes
QUALITY = 90
CIFAR_SHAPE = (50_000, 3, 32, 32)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10's, for the normalisation


def class_name(c: int) -> str:
    return f"n{c:08d}"  # synset-like, as ImageNet's folders


def default_root(seed: int = 0) -> Path:
    return Path(tempfile.gettempdir()) / f"ssl-bench-jpeg-folder-v{VERSION}-s{seed}"


def make_image(seed: int, index: int) -> Image.Image:
    """Image `index`: a random size in WIDTHS x HEIGHTS, a bicubic-smoothed coarse colour field plus grain."""
    rng = np.random.default_rng([seed, index])
    w, h = int(rng.integers(WIDTHS[0], WIDTHS[1] + 1)), int(rng.integers(HEIGHTS[0], HEIGHTS[1] + 1))
    coarse = rng.integers(0, 256, (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.int16)
    grain = rng.integers(-24, 25, (h, w, 3), dtype=np.int16)
    return Image.fromarray(np.clip(field + grain, 0, 255).astype(np.uint8))


def _file(root: Path, split: str, index: int) -> Path:
    return root / split / class_name(index % CLASSES) / f"img_{index:07d}.jpg"


def _write(job: tuple[str, int, int]) -> None:
    path, seed, index = job
    tmp = f"{path}.{os.getpid()}.tmp"  # not an image extension: a half-written file is never scanned
    make_image(seed, index).save(tmp, "JPEG", quality=QUALITY)
    os.replace(tmp, path)  # atomic: two benchmark runs filling one cache at once write the same bytes


def jpeg_folder(n_train: int, root: Path | None = None, seed: int = 0, processes: int | None = None) -> Path:
    """The folder (created or topped up) holding at least `n_train` train images; returns its path.
    train image i is in class i % CLASSES; val/ holds VAL_PER_CLASS images per class (their own indices)."""
    root = Path(root) if root is not None else default_root(seed)
    n_train = max(int(n_train), 2 * CLASSES)  # every class folder non-empty with room for the val hold-out
    jobs = [(_file(root, "train", i), seed, i) for i in range(n_train)]
    val_base = 1 << 30  # val images' indices: far from any train index, so never the same image
    jobs += [(_file(root, "val", val_base + i), seed, val_base + i) for i in range(VAL_PER_CLASS * CLASSES)]
    todo = [(str(p), s, i) for p, s, i in jobs if not p.exists()]
    for p in {Path(j[0]).parent for j in todo}:
        p.mkdir(parents=True, exist_ok=True)
    workers = processes if processes is not None else min(os.cpu_count() or 1, 16)
    if len(todo) > 64 and workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write, todo, chunksize=32))
    else:
        for job in todo:
            _write(job)
    return root


def synthetic_cifar(n: int = CIFAR_SHAPE[0], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 n x 3 x 32 x 32 images, int64 labels in 0..9), the same for the same (n, seed)."""
    words = np.random.default_rng(seed).integers(0, 2**64, n * 3 * 32 * 32 // 8, dtype=np.uint64)
    # 8 random bytes per draw (5x faster than drawing bytes); little-endian so every machine gets the same pixels
    images = torch.from_numpy(words.astype("<u8", copy=False).view(np.uint8).reshape(n, *CIFAR_SHAPE[1:]))
    return images, torch.arange(n) % 10
