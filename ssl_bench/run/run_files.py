"""A run folder's run.json: the run's resolved config, image size, split and pretraining stats."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ssl_bench import distributed as dist
from ssl_bench.jsonl import write_text_atomic


def write_run_json(built: Any, run_dir: Path, stats: dict | None) -> None:
    if not dist.is_main():
        return
    info = {"run_id": built.spec.run_id, "config": built.spec.config(), "image_size": built.image_size,
            "split_info": built.bundle.split_info, "stats": stats}
    write_text_atomic(run_dir / "run.json", json.dumps(info, indent=1, default=str))  # other ranks may read it


def load_stats(run_dir: Path) -> dict | None:
    path = run_dir / "run.json"
    if path.exists():
        try:
            return json.loads(path.read_text()).get("stats")
        except json.JSONDecodeError:
            print(f"warning: {path} unreadable; pretraining stats lost", file=sys.stderr)
    return None
