"""Atomic checkpoint files: write to a temporary name in the same folder, then rename."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load(path: str | os.PathLike, device: torch.device | str = "cpu") -> Any:
    return torch.load(path, map_location=device, weights_only=False)
