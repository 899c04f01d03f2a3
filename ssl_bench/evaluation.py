"""The evaluation contract: a frozen encoder and datasets in, result rows out."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from ssl_bench.data.types import DatasetBundle


class ProgressTask:
    """What `EvalContext.progress(desc, total, unit)` returns: a progress display for one phase of an
    evaluation (engine/progress.py draws it with tqdm; this base draws nothing, as under --quiet). Use it as a
    context manager: `with ctx.progress("linear: L2 sweep", len(grid), "fit") as task: ... task.update()`."""

    def update(self, n: int = 1, **info: Any) -> None:
        """`n` more units done; `info` (e.g. lr=0.1) is shown beside the bar."""

    def note(self, **info: Any) -> None:
        """A step inside the phase ended (one grid point): in a log file, one line now."""

    def close(self) -> None:
        """The phase ended (in a log file: its line, with the time it took)."""

    def __enter__(self) -> "ProgressTask":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def no_progress(desc: str, total: int, unit: str = "it") -> ProgressTask:
    """The default progress hook: draws nothing."""
    return ProgressTask()


@dataclass
class EvalContext:
    """What an evaluation may use. Feature extraction is cached per (dataset, split) and shared."""

    encoder: nn.Module  # frozen, eval mode; never train it in place (deepcopy to fine-tune)
    feature_dim: int
    method_needs_labels: bool  # the supervised baseline: semi-supervised trains it from scratch
    seed: int
    device: torch.device
    pretrain: DatasetBundle
    image_size: int  # input side length the encoder was trained at
    in_chans: int
    mean: tuple[float, ...]  # the encoder's input normalization (pretraining dataset's)
    std: tuple[float, ...]
    out_dir: str  # this run's folder, for artifacts (label subsets, ...)
    get_dataset: Callable[[str], DatasetBundle]
    # (dataset, split, view="eval", kind="pooled") -> feats, labels; kind "tokens": (N, T, C) float16
    # (ssl_bench.evalkit.feature_store); view "crop<i>": the i-th random crop of each image
    features: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    new_encoder: Callable[[], nn.Module]  # a freshly initialised backbone of the same architecture
    # keep per-image evidence of each classification_metrics result (ssl_bench.evalkit.evidence), for the tables'
    # bootstrap intervals and tests; a suite's `output: {predictions: false}` turns it off
    save_predictions: bool = True
    # DataLoader workers that read (and, on the CPU path, decode) folder datasets' images for extraction and
    # fine-tuning: the suite's pretrain.num_workers. In-memory datasets ignore it.
    num_workers: int = 0
    # progress(desc, total, unit) -> ProgressTask: a bar per phase (feature extraction, probe sweep, fine-tune
    # epochs) on a terminal, a line per phase in logs, nothing under --quiet (engine/progress.py)
    progress: Callable[..., ProgressTask] = no_progress
    # the run's resolved config (run.json's "config": method, pretrain options such as knn_monitor, seed, ...)
    run_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    """What tables need to know about one `protocol` value an evaluation writes, declared beside its code.

    `order` places it among the protocols of a table (the papers' order: knn 10, knn_max 15, linear 20,
    linear_sgd 30, online_linear 35, semi_supervised 40, transfer_linear 50, transfer_finetune 60); `metrics` are
    the metrics its rows carry, the first one being the headline. `table` names the preset table of
    `ssl-bench table` that shows it: "linear" (BYOL Table 1), "knn", "semi" (Table 2: label-fraction columns),
    "transfer" (Table 3: one column per dataset), "online" (a head trained during pretraining: its own table, never
    under the frozen-encoder title), or "" for "Other evaluations". `short` names its columns in
    the end-of-run summary (default: the name). Published rows may use any declared protocol name.
    `recipe_fields` name the terms of its evaluation recipe (what `Evaluation.recipe` returns for it, and what a
    published row of this protocol states in its `recipe` column): a delta against a published row is printed
    only when every field it states is equal to ours (ssl_bench.report.tables.reference)."""

    name: str
    label: str
    order: int
    metrics: tuple[str, ...] = ("top1", "top5")
    table: str = ""
    short: str = ""
    recipe_fields: tuple[str, ...] = ()


class Evaluation:
    """Base class of an evaluation protocol.

    `defaults` declares the hyperparameters (the suite's `params:` is validated against them).
    `evaluate` returns rows: dicts with at least protocol, eval_dataset, metric and value;
    anything else goes into the record's `extra`. A row that did not measure the frozen encoder (it fine-tuned a
    copy, or trained a fresh network) sets `uses_frozen_encoder: False`, so a collapsed encoder does not mark
    it `collapsed`. An exception raised by `evaluate` becomes one failed row naming it; the suite goes on. A
    protocol that does not apply to a run (online_linear on an untrained baseline) returns a row with status
    "skipped" and an `error` saying why: it is never retried and tables leave it out.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    protocols: ClassVar[tuple[Protocol, ...]] = ()  # every `protocol` value its rows may carry
    # pretrain options it reads back from the run (e.g. "knn_monitor"); validate refuses a suite without them
    requires_pretrain: ClassVar[tuple[str, ...]] = ()
    # what it asks ctx.features for besides pooled features ("tokens"): the run extracts them all in one pass
    feature_kinds: ClassVar[tuple[str, ...]] = ("pooled",)

    def __init__(self, **params: Any):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown parameters {sorted(unknown)}")
        self.params: dict[str, Any] = {**self.defaults, **params}

    def evaluate(self, ctx: EvalContext) -> list[dict[str, Any]]:
        raise NotImplementedError

    def recipe(self, run: dict[str, Any]) -> dict[str, Any] | None:
        """The evaluation recipe of its rows: the protocol parameters that change the number (epochs, lr grid,
        batch, refit, k, ...), keyed by its protocol's `recipe_fields`; `run` is the run's config (ctx.run_config).
        None (the default): no recipe, so no published row is ever subtracted from these rows. A row may carry
        its own `recipe` (one that needs what evaluate learned); the others get this one."""
        return None


UNSTATED = "?"  # a recipe field a published source does not state (never compared, named under the table)


def canonical_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """A recipe with numbers as floats (10 significant digits), tuples as lists: what ids hash and matches compare."""
    def norm(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            return float(f"{float(v):.10g}")
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in sorted(v.items())}
        return str(v)

    return {str(k): norm(v) for k, v in sorted(recipe.items())}


def recipe_id(recipe: dict[str, Any]) -> str:
    """A short id of a recipe (8 hex digits of the sha256 of its canonical JSON): equal recipes, equal ids."""
    blob = json.dumps(canonical_recipe(recipe), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def with_recipe(rows: list[dict[str, Any]], recipe: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The rows, each carrying `recipe` (its own if it set one, else the evaluation's); failed rows none."""
    if recipe is None:
        return rows
    return [r if "recipe" in r or r.get("status", "ok") == "failed" else {**r, "recipe": dict(recipe)}
            for r in rows]
