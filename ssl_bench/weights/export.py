"""`ssl-bench export OUT/runs/RUN --format timm|torchvision --output FILE`: the trained encoder as a plain
state dict, with a model card (method, recipe, data, epochs, result rows) beside it as FILE.json."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import torch

from ssl_bench.weights.load import read_checkpoint
from ssl_bench.weights.snippets import load_snippets
from ssl_bench.errors import UserError
from ssl_bench.jsonl import open_new
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


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """run.json as written by the run ({} when absent); anything else is one line, before a byte is written."""
    path = run_dir / "run.json"
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # garbage, not UTF-8, a folder, unreadable
        raise UserError(f"{path}: not readable as JSON ({type(exc).__name__}); allowed: the run.json ssl-bench "
                        "wrote for the run (or none)") from None
    if not isinstance(info, dict) or not isinstance(info.get("config", {}), dict):
        raise UserError(f"{path}: not a run description (a JSON object with a `config` mapping); allowed: the "
                        "run.json ssl-bench wrote for the run (or none)")
    return info


def _short(x: Any) -> Any:
    """A result field as the card shows it: a tampered 10 MB string in results.jsonl stays out of the card."""
    return x if not isinstance(x, str) or len(x) <= 256 else f"{x[:40]}... ({len(x)} characters)"


def model_card(run_dir: Path, info: dict[str, Any], fmt: str, output: Path, digest: str,
               in_chans: int = 3) -> dict[str, Any]:
    config = info.get("config", {})
    rows = ResultsStore(run_dir.parent.parent).run_rows(run_dir.name)
    name = config.get("backbone", "?")
    kwargs = config.get("backbone_kwargs", {})
    return {
        "run_id": run_dir.name, "exported": now(), "format": fmt, "file": output.name, "sha256": digest,
        "method": config.get("method"), "params": config.get("params"), "optim": config.get("optim"),
        "views": config.get("views"), "epochs": config.get("epochs"), "budget": config.get("budget"),
        "seed": config.get("seed"),
        "data": {"dataset": config.get("dataset"), "image_size": info.get("image_size"),
                 "dataset_params": config.get("dataset_params")},
        "backbone": {"name": name, "kwargs": kwargs, "small_stem": config.get("small_stem")},
        "results": [{k: _short(r.get(k)) for k in ("protocol", "eval_dataset", "metric", "label_fraction", "value",
                                                   "status")} for r in rows],
        "load": load_snippets(name, kwargs, config.get("small_stem", "auto"), info.get("image_size"), in_chans,
                              str(output), fmt),
    }


def _in_chans(state: dict[str, torch.Tensor]) -> int:
    """Input channels of the encoder: those of its first 4-d (convolution) weight."""
    first = next((v for v in state.values() if getattr(v, "ndim", 0) == 4), None)
    return int(first.shape[1]) if first is not None else 3


def _check_destination(run_dir: Path, fmt: str, output: Path, card_path: Path) -> None:
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"--format: bad value {fmt!r}; allowed: {', '.join(EXPORT_FORMATS)}")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a folder; allowed: OUT/runs/<run_id> of a finished run")
    for p in (output, card_path):
        if p.exists() or p.is_symlink():
            raise UserError(f"--output {p}: exists; allowed: a new file name (export never overwrites)")
    if not output.parent.is_dir():
        raise UserError(f"--output {output}: folder {output.parent} does not exist; allowed: an existing folder")


def export_run(run_dir: str | os.PathLike, fmt: str, output: str | os.PathLike) -> Path:
    """Everything is read and checked first (run.json, final.pt, results); then the state dict and its card
    are written through temporaries and renamed, so a refusal or a full disk leaves neither file behind."""
    run_dir, output = Path(run_dir), Path(output)
    card_path = output.with_name(output.name + ".json")
    _check_destination(run_dir, fmt, output, card_path)
    info = read_run_info(run_dir)
    backbone = str(info.get("config", {}).get("backbone", "?"))
    if fmt == "torchvision" and not backbone.startswith(("resnet", "wide_resnet")):
        raise UserError(f"--format torchvision: backbone {backbone!r} has no torchvision layout; allowed: timm "
                        "(torchvision shares key names with timm for ResNets only)")
    buffer = io.BytesIO()
    state = encoder_state(run_dir)
    torch.save(state, buffer)  # timm and torchvision ResNets share key names; no classifier
    blob = buffer.getvalue()
    card = json.dumps(model_card(run_dir, info, fmt, output, hashlib.sha256(blob).hexdigest(), _in_chans(state)),
                      indent=1, default=str)
    temporaries = [p.with_name(f"{p.name}.tmp{os.getpid()}") for p in (output, card_path)]
    placed: list[Path] = []
    try:
        for tmp, data in zip(temporaries, (blob, card.encode("utf-8"))):
            with open_new(tmp, binary=True) as f:  # never through a link planted at the temporary's name
                f.write(data)
        for tmp, final in zip(temporaries, (output, card_path)):
            os.replace(tmp, final)
            placed.append(final)
    except OSError:
        for p in [*temporaries, *placed]:  # a state dict without its card is not left behind
            with contextlib.suppress(OSError):
                p.unlink(missing_ok=True)
        raise
    return output
