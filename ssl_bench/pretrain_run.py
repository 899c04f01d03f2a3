"""Execute one run: build, pretrain (cached and resumable), freeze, evaluate, record."""
from __future__ import annotations

import copy
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import distributed as dist
from .backbones import create_backbone
from .data.augment import MultiViewAugment, ViewRecipe
from .data.datasets import load_dataset
from .data.types import DatasetBundle
from .engine import checkpoint
from .engine.trainer import TrainingDiverged, TrainSettings, pretrain
from .errors import DatasetUnavailableError
from .evaluation import EvalContext
from .features import collapse_score, feature_cache, freeze
from .registry import EVALUATIONS, METHODS
from .results_store import ResultsStore, now, versions
from .run_config import RunSpec, eval_key
from .suite import Suite
from .sync_batchnorm import convert_sync_batchnorm

COLLAPSE_THRESHOLD = 0.05  # collapse_score of a healthy encoder is O(1); a constant one is 0


@dataclass
class RunEnv:
    suite: Suite
    out_dir: Path
    store: ResultsStore
    device: torch.device
    amp_dtype: torch.dtype | None
    resume: bool
    progress: bool = True


def _get_dataset(env: RunEnv, name: str, params: dict[str, Any] | None = None) -> DatasetBundle:
    return load_dataset(name, env.suite.data_root, env.suite.download, **(params or {}))


def _say(msg: str) -> None:
    if dist.is_main():
        print(msg, flush=True)


def execute_run(spec: RunSpec, env: RunEnv, done: set[tuple[str, str]]) -> None:
    run_id, suite = spec.run_id, env.suite
    todo = [(e, eval_key(e.name, e.params)) for e in suite.evaluations]
    todo = [(e, k) for e, k in todo if (run_id, k) not in done]
    if not todo:
        _say(f"[skip] {run_id}: every evaluation already recorded")
        return
    run_dir = env.out_dir / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    base = {"suite": suite.name, "run_id": run_id, "config_hash": spec.config_hash, "method": spec.method.label,
            "method_name": spec.method.name,
            "backbone": spec.backbone.label, "pretrain_dataset": spec.dataset.name, "seed": spec.seed,
            "epochs": spec.method.epochs, "method_params": spec.method.params, "optim": spec.method.optim,
            "augment": spec.method.views, "versions": versions()}

    def record(rows: list[dict[str, Any]], e, key: str, status: str, wall: float, extra_base: dict) -> None:
        recs = []
        for row in rows:
            row = dict(row)
            rec = {**base, **extra_base, "protocol": row.pop("protocol", e.name),
                   "eval_dataset": row.pop("eval_dataset", spec.dataset.name), "metric": row.pop("metric", None),
                   "value": row.pop("value", None), "status": row.pop("status", status),
                   "error": row.pop("error", None), "label_fraction": row.pop("label_fraction", None),
                   "eval_key": key, "evaluation": e.name, "eval_params": e.params, "wall_time_s": wall,
                   "timestamp": now()}
            rec["extra"] = row.pop("extra", {}) | row
            recs.append(rec)
            value = "-" if rec["value"] is None else f"{rec['value']:.2f}"
            _say(f"  {spec.method.name:<12} {rec['protocol']:<18} {rec['eval_dataset']:<14} "
                 f"{rec['metric'] or '':<15} {value:>7}  {rec['status']}")
        if dist.is_main():
            env.store.append(recs)

    def fail_all(msg: str, extra_base: dict) -> None:
        for e, key in todo:
            record([{"error": msg}], e, key, "failed", 0.0, extra_base)

    _say(f"[run] {run_id}")
    try:
        bundle = _get_dataset(env, spec.dataset.name, spec.dataset.params)
    except DatasetUnavailableError as exc:
        return fail_all(str(exc), {})
    image_size = spec.dataset.image_size or bundle.native_size
    cls = METHODS.get(spec.method.name)

    def new_backbone() -> torch.nn.Module:
        return create_backbone(spec.backbone.name, in_chans=bundle.channels, image_size=image_size,
                               small_stem=spec.backbone.small_stem, **spec.backbone.kwargs)

    torch.manual_seed(spec.seed)  # same initialisation on every rank
    method = cls(new_backbone(), num_classes=bundle.num_classes, **spec.method.params)
    info = {"run_id": run_id, "config": spec.config(), "image_size": image_size, "split_info": bundle.split_info}
    status, error, stats = "ok", None, _load_stats(run_dir)
    final = run_dir / "final.pt"
    if cls.trainable and spec.method.epochs > 0:
        if final.exists():
            method.load_state_dict(checkpoint.load(final)["model"])
        else:
            try:
                stats = _train(method, bundle, spec, env, run_dir, image_size)
                if dist.is_main():
                    checkpoint.save_atomic({"model": method.state_dict(), "stats": stats}, final)
            except TrainingDiverged as exc:
                status, error = "failed", f"pretraining diverged: {exc}"
    if dist.is_main():
        tmp = run_dir / "run.json.tmp"  # atomic: other ranks may be reading it (_load_stats)
        tmp.write_text(json.dumps({**info, "stats": stats}, indent=1, default=str))
        tmp.replace(run_dir / "run.json")
    extra_base = {"image_size": image_size, "split_info": bundle.split_info,
                  "pretrain_time_s": (stats or {}).get("train_time_s", 0.0)}
    if status == "failed":
        return fail_all(error, extra_base)
    method.to(env.device)
    encoder = freeze(method.encoder())
    in_chans = bundle.channels
    features = feature_cache(encoder, lambda n: bundle if n == spec.dataset.name else _get_dataset(env, n),
                             image_size=image_size, in_chans=in_chans, mean=bundle.mean, std=bundle.std,
                             device=env.device)
    score = collapse_score(features(spec.dataset.name, "val")[0])
    if score < COLLAPSE_THRESHOLD:
        status = "collapsed"
    extra_base["collapse_score"] = score

    def new_encoder() -> torch.nn.Module:
        torch.manual_seed(spec.seed)
        return new_backbone().to(env.device)

    ctx = EvalContext(encoder=encoder, feature_dim=encoder.num_features, method=spec.method.name,
                      method_needs_labels=cls.needs_labels, seed=spec.seed, device=env.device, pretrain=bundle,
                      image_size=image_size, in_chans=in_chans, mean=bundle.mean, std=bundle.std,
                      out_dir=str(run_dir), get_dataset=lambda n: bundle if n == spec.dataset.name
                      else _get_dataset(env, n), features=features, new_encoder=new_encoder)
    for e, key in todo:
        t0 = time.perf_counter()
        try:
            rows = EVALUATIONS.get(e.name)(**e.params).evaluate(ctx)
        except DatasetUnavailableError as exc:  # a missing transfer dataset fails that evaluation only
            rows = [{"status": "failed", "error": str(exc)}]
        record(rows, e, key, status, time.perf_counter() - t0, extra_base)


def _train(method, bundle: DatasetBundle, spec: RunSpec, env: RunEnv, run_dir: Path, image_size: int) -> dict:
    p = spec.pretrain
    recipes = [ViewRecipe.from_dict(v, f"methods.{spec.method.name}.augment") for v in spec.method.views]
    augment = MultiViewAugment(recipes, image_size, bundle.mean, bundle.std,
                               blur_small_images=spec.method.blur_small_images)
    # SyncBN on a copy: evaluations that fine-tune the encoder afterwards (redundantly on every rank) must see
    # plain BatchNorm again; the state_dict keys are the same, so the weights are copied back after training.
    model = method
    if dist.world_size() > 1 and p["sync_bn"]:
        model = convert_sync_batchnorm(copy.deepcopy(method), env.device)
    settings = TrainSettings(epochs=spec.method.epochs, batch_size=p["batch_size"], optim=spec.method.optim,
                             device=env.device, amp_dtype=env.amp_dtype, channels_last=p["channels_last"],
                             num_workers=p["num_workers"], seed=spec.seed, log_every=p["log_every"],
                             metrics_format=p["metrics_format"], progress=env.progress, compile=p["compile"])
    stats = pretrain(model, bundle.train, augment, settings, run_dir, resume=env.resume,
                     label=f"{spec.method.name}/s{spec.seed}")
    dist.broadcast_module(model)  # one model on every rank (plain-BN running stats drift apart per rank)
    if model is not method:
        method.load_state_dict(model.state_dict())
    return stats


def _load_stats(run_dir: Path) -> dict | None:
    path = run_dir / "run.json"
    if path.exists():
        try:
            return json.loads(path.read_text()).get("stats")
        except json.JSONDecodeError:
            print(f"warning: {path} unreadable; pretraining stats lost", file=sys.stderr)
    return None
