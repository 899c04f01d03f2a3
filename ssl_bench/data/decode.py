"""Decoding one image file on the CPU (PIL): whole images for folder datasets, a centre square for small
in-memory sets, a file that does not decode named in the error; and the suite's choice of where JPEGs decode."""
from __future__ import annotations

import numpy as np
import torch

from ssl_bench.errors import DatasetError, UserError

DECODE_CHOICES = ("auto", "cpu", "device")


def decode_image(path: str, size: int, channels: int = 3) -> torch.Tensor:
    """PIL decode -> RGB or L -> shorter side resized to `size` (bilinear) -> center crop size x size ->
    uint8 C x size x size. Sizes and crop offsets follow torchvision's Resize(size) + CenterCrop(size).
    (Folder datasets decode the whole image instead: decode_whole.)"""
    from PIL import Image

    mode = "RGB" if channels == 3 else "L"
    with Image.open(path) as img:
        img.draft(mode, (size, size))  # JPEG only: DCT-domain downscale to a size still >= `size`
        img = img.convert(mode)
    w, h = img.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.BILINEAR)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.array(img, dtype=np.uint8))
    return x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1).contiguous()


def reduced_size(h: int, w: int, max_short: int | None) -> tuple[int, int]:
    """(height, width) of an h x w image reduced until its shorter side is at most `max_short` and its longer
    side at most 2 * max_short, aspect ratio kept, never enlarged (None: unchanged)."""
    scale = 1.0 if max_short is None else min(1.0, max_short / min(w, h), 2 * max_short / max(w, h))
    return (h, w) if scale >= 1.0 else (max(1, round(h * scale)), max(1, round(w * scale)))


def decode_whole(path: str, max_short: int | None, channels: int = 3) -> torch.Tensor:
    """PIL decode -> RGB or L, the whole image (aspect ratio kept) -> uint8 C x h x w. The image is reduced
    (bicubic, antialiased; JPEGs first at a DCT scale that stays large enough) until its shorter side is at
    most `max_short` and its longer side at most 2 * max_short (a batch is padded to its largest image, so
    this bounds memory; it shrinks only images wider than 2:1); smaller images are never enlarged. None:
    full size. Crops then come from the whole image, as [DM dataset.py] crops the decoded JPEG. The size
    follows from the file's own size (not the draft's, whose sides are rounded up), as on the device path."""
    from PIL import Image

    mode = "RGB" if channels == 3 else "L"
    with Image.open(path) as img:
        new_h, new_w = reduced_size(img.height, img.width, max_short)
        if max_short is not None:
            img.draft(mode, (max_short, max_short))  # JPEG only: never below max_short on either side
        img = img.convert(mode)
    if (new_h, new_w) != (img.height, img.width):
        img = img.resize((new_w, new_h), Image.BICUBIC)
    x = torch.from_numpy(np.array(img, dtype=np.uint8))
    return x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1).contiguous()


def decode_checked(path: str, max_short: int | None, channels: int = 3) -> torch.Tensor:
    """loader.decode_whole, with a file that does not decode reported by name (a DatasetError the pipeline
    turns into a failed row), not as a PIL traceback from a DataLoader worker."""
    from PIL import Image

    try:
        return decode_whole(path, max_short, channels)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # PIL's decode errors
        raise DatasetError(f"image {path!r} cannot be decoded ({type(exc).__name__}: {exc}); allowed: a readable "
                           "image file (replace or delete it)") from None


def check_decode(value: object, where: str) -> str:
    if value not in DECODE_CHOICES:
        raise UserError(f"{where}: bad value {value!r}; allowed: auto (decode JPEGs on the CUDA device when "
                        "torchvision can), cpu (PIL in DataLoader workers) or device (torchvision's decode_jpeg "
                        "on the batch's device)")
    return str(value)
