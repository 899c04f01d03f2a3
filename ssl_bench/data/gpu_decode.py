"""Folder images decoded in batches on the device: DataLoader workers only read JPEG bytes, the main thread
decodes the batch with torchvision.io.decode_jpeg (nvJPEG on CUDA; libjpeg-turbo when the device is the CPU),
reduces each image as decode_whole does (shorter side <= load_size, longer <= 2 * load_size, antialiased
bicubic, never enlarged) and pads the batch into a FolderBatch canvas where it will be used.

A file that is not an 8-bit baseline/progressive JPEG with 1 or 3 components (PNG, CMYK JPEG, arithmetic
coding, a header that does not parse) is decoded by the worker on the CPU exactly as the CPU path does
(decode_checked) and travels decoded. Unlike decode_whole, a large JPEG is decoded at full size before it is
reduced (no DCT-domain downscale), so such images differ from the CPU path by a few grey levels.
"""
from __future__ import annotations

import functools
import io
import sys
import warnings
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ssl_bench.errors import UserError
from ssl_bench.data.decode import decode_checked, reduced_size
from ssl_bench.data.folder_dataset import DecodedFolder, folder_dataset
from ssl_bench.data.types import FolderBatch, ImageSet

# frame markers nvJPEG and libjpeg-turbo both decode: baseline, extended sequential and progressive Huffman
DEVICE_SOF_MARKERS = (0xC0, 0xC1, 0xC2)
OTHER_SOF_MARKERS = (0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)


@functools.lru_cache(maxsize=None)
def device_decode_supported(device: str) -> bool:
    """Whether torchvision decodes a JPEG on `device` (tried once on a tiny image: a build without nvJPEG
    or image ops says so only when called)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 90)).save(buf, "JPEG")
    try:
        _decode([torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)], torch.device(device), 3)
    except Exception:  # noqa: BLE001 - missing ops, no nvJPEG, no driver: all mean "not here"
        return False
    return True


def use_device_decode(choice: str, device: torch.device) -> bool:
    """auto: on a CUDA device that decodes JPEGs; device: always (a UserError if torchvision cannot); cpu: never."""
    if choice == "cpu":
        return False
    supported = device_decode_supported(str(device))
    if choice == "device" and not supported:
        raise UserError(f"dataset params.decode: 'device' but torchvision cannot decode JPEGs on {device}; "
                        "allowed here: auto or cpu")
    return supported and (choice == "device" or device.type == "cuda")


def device_decodable(raw: bytes) -> bool:
    """An 8-bit Huffman JPEG (baseline, extended or progressive) with 1 or 3 components: read from its frame
    header, reached by walking the marker segments from the FF D8 start-of-image magic."""
    if raw[:2] != b"\xff\xd8":
        return False
    i = 2
    while i + 4 <= len(raw):
        if raw[i] != 0xFF:
            return False
        marker = raw[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in DEVICE_SOF_MARKERS:
            return i + 10 <= len(raw) and raw[i + 4] == 8 and raw[i + 9] in (1, 3)  # precision, components
        if marker in OTHER_SOF_MARKERS or marker in (0xD9, 0xDA):  # other codings; no frame before the scan
            return False
        i += 2 + int.from_bytes(raw[i + 2:i + 4], "big")
    return False


class RawFolder(DecodedFolder):
    """Workers: a JPEG's bytes (1-D uint8), any other image decoded whole on the CPU (C x h x w)."""

    cache_key = "_raw"

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor, torch.Tensor]:
        path = self.paths[i]
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError:
            raw = b""  # decode_checked below names the file
        if device_decodable(raw):
            return path, torch.frombuffer(bytearray(raw), dtype=torch.uint8), self.labels[i]
        return path, decode_checked(path, self.max_short, self.channels), self.labels[i]


@dataclass
class RawBatch:
    """One batch as it leaves a worker: every payload in one buffer (one shared-memory segment, not one per
    image). shapes[k] is (0, 0, 0) for JPEG bytes, else the decoded image's C x h x w."""

    data: torch.Tensor  # uint8, all payloads back to back
    offsets: torch.Tensor  # long B + 1
    shapes: torch.Tensor  # long B x 3
    paths: list[str]
    labels: torch.Tensor

    def payloads(self) -> list[torch.Tensor]:
        out, offsets = [], self.offsets.tolist()
        for k, shape in enumerate(self.shapes.tolist()):
            seg = self.data[offsets[k]:offsets[k + 1]]
            out.append(seg if shape[0] == 0 else seg.view(*shape))
        return out


def raw_collate(items: list[tuple[str, torch.Tensor, torch.Tensor]]) -> RawBatch:
    sizes = [p.numel() for _, p, _ in items]
    offsets = torch.tensor([0] + sizes, dtype=torch.long).cumsum(0)
    data = torch.cat([p.reshape(-1) for _, p, _ in items]) if items else torch.zeros(0, dtype=torch.uint8)
    shapes = torch.tensor([[0, 0, 0] if p.dim() == 1 else list(p.shape) for _, p, _ in items],
                          dtype=torch.long).view(-1, 3)
    labels = torch.stack([torch.as_tensor(y) for _, _, y in items])
    return RawBatch(data, offsets, shapes, [path for path, _, _ in items], labels)


def _decode(payloads: list[torch.Tensor], device: torch.device, channels: int) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders in favour of TorchCodec
        warnings.simplefilter("ignore", DeprecationWarning)
        return list(decode_jpeg(payloads, mode=mode, device=device))


_warned_fallback = False


def decode_jpegs(payloads: list[torch.Tensor], paths: list[str], device: torch.device,
                 channels: int) -> list[torch.Tensor]:
    """Full-size uint8 C x h x w images on `device`. When the batch is rejected each file is retried alone;
    one rejected alone is decoded by PIL, whose failure is decode_checked's DatasetError naming the file."""
    if not payloads:
        return []
    try:
        return _decode(payloads, device, channels)
    except (RuntimeError, ValueError):
        pass
    out = []
    for payload, path in zip(payloads, paths):
        try:
            out += _decode([payload], device, channels)
        except (RuntimeError, ValueError) as exc:
            out.append(_pil_fallback(path, device, channels, exc))
    return out


def _pil_fallback(path: str, device: torch.device, channels: int, exc: Exception) -> torch.Tensor:
    img = decode_checked(path, None, channels).to(device)  # raises the DatasetError when PIL fails too
    global _warned_fallback
    if not _warned_fallback:
        _warned_fallback = True
        first = (str(exc).strip().splitlines() or [""])[-1][:200]
        print(f"warning: torchvision did not decode {path!r} on {device} ({first}); decoded with PIL instead "
              "(said once)", file=sys.stderr, flush=True)
    return img


def reduce_images(images: list[torch.Tensor], max_short: int | None) -> list[torch.Tensor]:
    """Each image reduced to loader.reduced_size (antialiased bicubic on float, rounded); images of one size
    are resized together."""

    out = list(images)
    if max_short is None:
        return out
    groups: dict[tuple[int, int, int, int], list[int]] = {}
    for k, img in enumerate(images):
        h, w = img.shape[-2:]
        target = reduced_size(h, w, max_short)
        if target != (h, w):
            groups.setdefault((h, w, *target), []).append(k)
    for (_, _, th, tw), idx in groups.items():
        x = torch.stack([images[k] for k in idx]).float()
        y = F.interpolate(x, size=(th, tw), mode="bicubic", antialias=True, align_corners=False)
        y = y.round_().clamp_(0, 255).to(torch.uint8)
        for k, img in zip(idx, y):
            out[k] = img
    return out


def pad_images(images: list[torch.Tensor], channels: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(canvas uint8 B x C x H x W with each image top-left on zeros, sizes long B x 2), on `device`."""
    sizes = torch.tensor([list(img.shape[-2:]) for img in images], dtype=torch.long).view(-1, 2)
    h, w = (int(m) for m in sizes.amax(0)) if images else (0, 0)
    canvas = torch.zeros(len(images), channels, h, w, dtype=torch.uint8, device=device)
    for k, img in enumerate(images):
        canvas[k, :, :img.shape[-2], :img.shape[-1]] = img
    return canvas, sizes.to(device)


def decode_batch(batch: RawBatch, device: torch.device, max_short: int | None,
                 channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A worker's RawBatch -> (canvas, sizes) on `device`, as loader.pad_collate lays them out."""
    payloads = batch.payloads()
    jpegs = [k for k, shape in enumerate(batch.shapes[:, 0].tolist()) if shape == 0]
    jpeg_set = set(jpegs)
    decoded = decode_jpegs([payloads[k] for k in jpegs], [batch.paths[k] for k in jpegs], device, channels)
    images: list[torch.Tensor | None] = [None if k in jpeg_set else p.to(device) for k, p in enumerate(payloads)]
    for k, img in zip(jpegs, reduce_images(decoded, max_short)):  # non-JPEGs came reduced from the worker
        images[k] = img
    return pad_images(images, channels, device)


def device_batches(data: ImageSet, order: torch.Tensor, batch_size: int, *, drop_last: bool, device: torch.device,
                   num_workers: int) -> Iterator[tuple[FolderBatch, torch.Tensor]]:
    """(FolderBatch, labels) on `device` for the samples of `order`, JPEGs decoded there."""
    loader = DataLoader(folder_dataset(data, RawFolder), batch_size=batch_size, sampler=order.tolist(), drop_last=drop_last,
                        num_workers=num_workers, collate_fn=raw_collate, persistent_workers=False,
                        prefetch_factor=4 if num_workers > 0 else None)
    for batch in loader:
        pixels, sizes = decode_batch(batch, device, data.load_size, data.channels)
        yield FolderBatch(pixels, sizes, data.eval_crop), batch.labels.to(device)
