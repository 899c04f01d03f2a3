"""Load encoder weights from a published checkpoint into a backbone, refusing anything that does not fit.

Loading is weights_only (a pickle that would run code is refused, never executed). The key layout is detected
(checkpoint_formats.detect) or given; the result must cover every tensor of the backbone with the same shape,
except a 3-channel first conv loaded into a 1-channel backbone, which is adapted as timm does
(adapt_input_conv: summed over the colour channels), and a ViT's position embedding trained at another grid
(e.g. 224 px weights in a 32 px suite), resampled to the backbone's grid as timm does when it loads weights at
another size (resample_abs_pos_embed: bicubic, class-token rows kept). Before torch.load, the file's unpacked
size is bounded by the backbone's (a 4 MB zip can inflate to gigabytes); loaded tensors must be finite, and
dtype casts (fp16 or int64 weights into a float32 backbone) are reported in the record. Each refusal is one
line naming the file.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssl_bench.weights.formats import CHECKPOINT_FORMATS, detect
from ssl_bench.errors import UserError

ALLOC_FACTOR = 32
ALLOC_SLACK = 64 << 20


_SHA_CACHE: dict[tuple[str, int, int, int], str] = {}


def sha256(path: str | os.PathLike) -> str:
    """The file's sha256, cached by (path, inode, size, mtime): a run id may hash it many times."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def allocation_bound(backbone: nn.Module) -> int:
    """What a checkpoint for `backbone` may hold: many times its tensors (a momentum copy, heads, optimizer
    state, a MoCo queue) plus a fixed allowance, far below a decompression bomb."""
    own = sum(t.numel() * t.element_size() for t in backbone.state_dict().values())
    return ALLOC_FACTOR * own + ALLOC_SLACK


def _unpacked_bytes(path: Path) -> int:
    """Bytes torch.load would unpack: the sum of the zip's member sizes (read from its directory, nothing is
    decompressed); a legacy pickle stream stores its tensors inline, so its own size."""
    if not zipfile.is_zipfile(path):
        return path.stat().st_size
    try:
        with zipfile.ZipFile(path) as z:
            return sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return path.stat().st_size  # torch.load reports what is wrong with it


def read_checkpoint(path: Path, max_bytes: int | None = None) -> Any:
    """torch.load with weights_only; one-line UserErrors for files that are not (safe) checkpoints, and for
    files that would unpack to more than `max_bytes` (checked before torch allocates anything)."""
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; allowed: a path to a .pt/.pth/.tar file")
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic[:2] != b"PK" and magic[:1] != b"\x80":  # torch's zip container, or a legacy pickle stream
        raise UserError(f"{path}: not a PyTorch checkpoint (neither a torch.save zip file nor a pickle)")
    unpacked = _unpacked_bytes(path)
    if max_bytes is not None and unpacked > max_bytes:
        raise UserError(f"{path}: would unpack to {unpacked} bytes ({path.stat().st_size} on disk); allowed: at "
                        f"most {max_bytes} bytes for this backbone ({ALLOC_FACTOR}x its tensors + "
                        f"{ALLOC_SLACK >> 20} MiB)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise UserError(f"{path}: refused: it holds objects other than tensors, numbers, strings and dicts "
                            "(a pickle that could run code); allowed: a weights-only checkpoint") from None
        raise UserError(f"{path}: not a PyTorch checkpoint ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise UserError(f"{path}: not a PyTorch checkpoint ({_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _pos_embed_at(v: torch.Tensor, t: torch.Tensor, grid: tuple[int, int] | None) -> torch.Tensor | None:
    """A checkpoint's (1, prefix + h*w, D) position embedding resampled to the backbone's grid, or None where
    it is not one (not a square grid with the backbone's prefix rows)."""
    from timm.layers import resample_abs_pos_embed

    if grid is None or v.dim() != 3 or v.shape[0] != 1 or v.shape[2] != t.shape[2]:
        return None
    prefix = t.shape[1] - grid[0] * grid[1]  # rows for the class / register tokens (0: none, or no_embed_class)
    side = round((v.shape[1] - prefix) ** 0.5) if v.shape[1] > prefix else 0
    if prefix < 0 or side == 0 or side * side != v.shape[1] - prefix:
        return None
    return resample_abs_pos_embed(v.float(), new_size=list(grid), old_size=[side, side], num_prefix_tokens=prefix)


def _fit(enc: dict[str, torch.Tensor], target: dict[str, torch.Tensor], path: Path, fmt: str,
         grid: tuple[int, int] | None = None) -> tuple[dict[str, torch.Tensor], str | None, str | None]:
    """The backbone's state dict filled from `enc`; (state, note on what was adapted, note on dtype casts).
    `grid`: a ViT backbone's patch grid, to which a position embedding of another grid is resampled."""
    from timm.models import adapt_input_conv

    missing = [k for k in target if k not in enc and not k.endswith("num_batches_tracked")]
    if missing:
        raise UserError(f"{path} ({fmt}): {len(missing)} encoder key(s) missing, first {missing[0]!r}; allowed: "
                        "a checkpoint of the suite's backbone architecture")
    out, notes, cast = {}, [], []
    for k, t in target.items():
        v = enc.get(k, t)  # num_batches_tracked may be absent (converted releases): keep the backbone's
        if v.shape != t.shape and v.dim() == 4 and v.shape[1] == 3 and t.shape[1] == 1 and v.shape[0] == t.shape[0]:
            v = adapt_input_conv(1, v)
            notes.append(f"{k}: 3 input channels summed into 1 (timm adapt_input_conv)")
        resampled = _pos_embed_at(v, t, grid) if v.shape != t.shape and k == "pos_embed" else None
        if resampled is not None:
            old, v = tuple(v.shape), resampled
            notes.append(f"{k}: resampled from {old} to {tuple(v.shape)} (timm resample_abs_pos_embed, bicubic)")
        if v.shape != t.shape:
            raise UserError(f"{path} ({fmt}): shape mismatch at {k!r}: checkpoint {tuple(v.shape)}, backbone "
                            f"{tuple(t.shape)}; allowed: a checkpoint of the suite's backbone architecture")
        if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all()):
            raise UserError(f"{path} ({fmt}): tensor {k!r} holds NaN or inf values; allowed: finite weights (a "
                            "run that diverged saves non-finite weights)")
        if v.dtype != t.dtype:
            cast.append((k, v.dtype, t.dtype))
        out[k] = v.to(t.dtype)
    return out, "; ".join(notes) or None, _cast_note(cast)


def _cast_note(cast: list[tuple[str, torch.dtype, torch.dtype]]) -> str | None:
    """'3 tensor(s) cast: torch.float16 -> torch.float32 (first 'conv1.weight')': what loading changed."""
    if not cast:
        return None
    kinds = sorted({f"{str(a).removeprefix('torch.')} -> {str(b).removeprefix('torch.')}" for _, a, b in cast})
    return f"{len(cast)} tensor(s) cast to the backbone's dtype: {', '.join(kinds)} (first {cast[0][0]!r})"


def load_encoder(backbone: nn.Module, checkpoint: str | os.PathLike, fmt: str = "auto") -> dict[str, Any]:
    """Load `checkpoint` into `backbone` in place; returns what the record says about it."""
    path = Path(checkpoint)
    ckpt = read_checkpoint(path, allocation_bound(backbone))
    chosen = detect(ckpt) if fmt == "auto" else fmt
    if chosen is None:
        raise UserError(f"{path}: cannot tell its key layout; allowed: params.format one of "
                        f"{', '.join(CHECKPOINT_FORMATS.names())}")
    if chosen not in CHECKPOINT_FORMATS:
        raise UserError(f"params.format: bad value {fmt!r}; allowed: auto, {', '.join(CHECKPOINT_FORMATS.names())}")
    enc, ignored = CHECKPOINT_FORMATS.get(chosen).convert(ckpt if isinstance(ckpt, dict) else {})
    target = backbone.state_dict()
    grid = tuple(backbone.grid_size) if hasattr(backbone, "forward_tokens") else None  # a ViT (backbones/vit.py)
    state, note, cast = _fit(enc, target, path, chosen, grid)
    backbone.load_state_dict(state)
    extra = [k for k in enc if k not in target]
    return {"checkpoint": str(path.resolve()), "checkpoint_bytes": path.stat().st_size,
            "checkpoint_sha256": sha256(path), "checkpoint_format": chosen,
            "keys_loaded": sum(k in enc for k in target), "keys_ignored": len(ignored) + len(extra),
            "keys_missing": sum(k not in enc for k in target), "input_adapted": note, "dtype_cast": cast}
