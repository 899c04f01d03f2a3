"""`ssl-bench export OUT/runs/RUN --format timm|torchvision --output FILE`: the trained encoder as a plain
state dict, with a model card (method, recipe, data, epochs, result rows) beside it as FILE.json."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ssl_bench.weights.load import read_checkpoint, sha256
from ssl_bench.errors import UserError
from ssl_bench.jsonl import atomic_writer, write_text_atomic
from ssl_bench.run.ledger import ResultsStore, now

EXPORT_FORMATS = ("timm", "torchvision")


def encoder_state(run_dir: Path) -> dict[str, torch.Tensor]:
    final = run_dir / "final.pt"
    if not final.is_file():
        raise UserError(f"{final}: not found; allowed: the folder of a finished, trained run (OUT/runs/<run_id>)")
    state = read_checkpoint(final)
    model = state.get("model") if isinstance(state, dict) else None
    enc = {k[len("backbone."):]: v for k, v in (model or {}).items() if k.startswith("backbone.")}
    if not enc:
        raise UserError(f"{final}: holds no encoder weights (backbone.*); allowed: a final.pt written by ssl-bench")
    return enc


def model_card(run_dir: Path, fmt: str, output: Path) -> dict[str, Any]:
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    config = info.get("config", {})
    rows = ResultsStore(run_dir.parent.parent).run_rows(run_dir.name)
    name = config.get("backbone", "?")
    kwargs = config.get("backbone_kwargs", {})
    return {
        "run_id": run_dir.name, "exported": now(), "format": fmt, "file": output.name, "sha256": sha256(output),
        "method": config.get("method"), "params": config.get("params"), "optim": config.get("optim"),
        "views": config.get("views"), "epochs": config.get("epochs"), "budget": config.get("budget"),
        "seed": config.get("seed"),
        "data": {"dataset": config.get("dataset"), "image_size": info.get("image_size"),
                 "dataset_params": config.get("dataset_params")},
        "backbone": {"name": name, "kwargs": kwargs, "small_stem": config.get("small_stem")},
        "results": [{k: r.get(k) for k in ("protocol", "eval_dataset", "metric", "label_fraction", "value",
                                           "status")} for r in rows],
        "load": {"timm": f"timm.create_model({name!r}, pretrained=True, num_classes=0, "
                         f"pretrained_cfg_overlay=dict(file={str(output)!r}), **{kwargs!r})",
                 "torchvision": f"model.load_state_dict(torch.load({str(output)!r}), strict=False)  # no fc",
                 "ssl_bench": f"methods: [{{name: pretrained, params: {{checkpoint: {output}, format: {fmt}}}}}]",
                 "note": "ssl-bench narrows single-conv stems (stem_width) and may use a small-image stem; load "
                         "such encoders with the `pretrained` method, or rebuild the same stem before loading"},
    }


def _backbone_name(run_dir: Path) -> str:
    try:
        return str(json.loads((run_dir / "run.json").read_text())["config"]["backbone"])
    except (OSError, ValueError, KeyError):
        return "?"


def export_run(run_dir: str | os.PathLike, fmt: str, output: str | os.PathLike) -> Path:
    run_dir, output = Path(run_dir), Path(output)
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"--format: bad value {fmt!r}; allowed: {', '.join(EXPORT_FORMATS)}")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a folder; allowed: OUT/runs/<run_id> of a finished run")
    card_path = output.with_name(output.name + ".json")
    for p in (output, card_path):
        if p.exists():
            raise UserError(f"--output {p}: exists; allowed: a new file name (export never overwrites)")
    if not output.parent.is_dir():
        raise UserError(f"--output {output}: folder {output.parent} does not exist; allowed: an existing folder")
    backbone = _backbone_name(run_dir)
    if fmt == "torchvision" and not backbone.startswith(("resnet", "wide_resnet")):
        raise UserError(f"--format torchvision: backbone {backbone!r} has no torchvision layout; allowed: timm "
                        "(torchvision shares key names with timm for ResNets only)")
    enc = encoder_state(run_dir)  # timm and torchvision ResNets share key names; no classifier is written
    with atomic_writer(output) as f:
        torch.save(enc, f)
    write_text_atomic(card_path, json.dumps(model_card(run_dir, fmt, output), indent=1, default=str))
    return output
