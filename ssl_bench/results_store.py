"""OUT/results.jsonl: one JSON object per finished evaluation row, written atomically."""
from __future__ import annotations

import json
import os
import platform
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

RESULTS_FILE = "results.jsonl"


def versions() -> dict[str, str]:
    import sklearn
    import timm
    import torch
    import torchvision

    from . import __version__

    return {"ssl_bench": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "timm": timm.__version__, "sklearn": sklearn.__version__, "python": platform.python_version()}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ResultsStore:
    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir) / RESULTS_FILE

    def load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows = []
        for i, line in enumerate(self.path.read_text().splitlines()):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                warnings.warn(f"{self.path}: skipping unreadable line {i + 1}")
        return rows

    def done_keys(self) -> set[tuple[str, str]]:
        return {(r["run_id"], r.get("eval_key", "")) for r in self.load()}

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Rewrite the file with the new lines to a temp file, then rename: a kill leaves old or new, never torn."""
        new = "".join(json.dumps(r, default=_jsonable) + "\n" for r in records)
        if not new:
            return
        old = self.path.read_text() if self.path.exists() else ""
        if old and not old.endswith("\n"):
            old += "\n"
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        with open(tmp, "w") as f:
            f.write(old + new)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, (set, tuple)):
        return list(x)
    return str(x)
