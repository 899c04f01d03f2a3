"""Execute one run in named stages: build -> pretrain_or_load -> freeze_for_evaluation -> evaluate_all (each
evaluation's rows go to the ledger through a RunRecorder as soon as it finishes)."""
from __future__ import annotations

import copy
import dataclasses
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ssl_bench.config import budget
from ssl_bench import distributed as dist
from ssl_bench.create import create_backbone, create_dataset, create_evaluation, create_method
from ssl_bench.data.augment import MultiViewAugment, ViewRecipe
from ssl_bench.data.augment_recipe import check_view_sizes
from ssl_bench.data.types import DatasetBundle
from ssl_bench.engine import checkpoint
from ssl_bench.evalkit.monitors import training_monitors
from ssl_bench.engine.plan import plan as train_plan
from ssl_bench.engine.compute import compute_record, flops_per_image, step_time_s
from ssl_bench.engine.prefetch import resolve_prefetch
from ssl_bench.engine.loggers import RunLoggers
from ssl_bench.engine.progress import progress_hook
from ssl_bench.engine.trainer import TrainingDiverged, TrainSettings, pretrain
from ssl_bench.errors import DISK_ERRNOS, DatasetUnavailableError, UserError
from ssl_bench.evaluation import EvalContext, with_recipe
from ssl_bench.evalkit.evidence import save_evidence
from ssl_bench.evalkit.features import collapse_score, declared_kinds, feature_cache, freeze
from ssl_bench.method import Method
from ssl_bench.metrics import collect_evidence
from ssl_bench.registry import METHODS
from ssl_bench.run.guard import epoch_hook, step_hook
from ssl_bench.run.ledger import ResultsStore
from ssl_bench.run.locks import Claim
from ssl_bench.config.run_spec import RunSpec, eval_key
from ssl_bench.run.run_files import load_stats, write_run_json
from ssl_bench.run.recorder import CRASH_FILE, RunRecorder, one_line, say
from ssl_bench.config.spec import EvalSpec, Suite
from ssl_bench.engine.sync_batchnorm import convert_sync_batchnorm

COLLAPSE_THRESHOLD = 0.05  # collapse_score of a healthy encoder is O(1); a constant one is 0
FINAL_FALLBACK = "retraining this run (from checkpoint.pt when that is good)"


@dataclass
class RunEnv:
    suite: Suite
    out_dir: Path
    store: ResultsStore
    device: torch.device
    amp_dtype: torch.dtype | None
    resume: bool
    progress: bool = True
    claim: Claim | None = None  # the run's claim while a worker executes it (guard.py)


@dataclass
class Built:
    """A run's data and its method, freshly initialised from the run seed (see build)."""

    spec: RunSpec
    bundle: DatasetBundle
    image_size: int
    cls: type
    method: Method = None  # type: ignore[assignment]  # set by build()
    train_state: dict = field(default_factory=dict)  # trained beside the method (online head): into final.pt
    loggers: RunLoggers | None = None  # the run's experiment loggers (per-step values of pretraining)

    def new_backbone(self) -> nn.Module:
        s = self.spec.backbone
        return create_backbone(s.name, in_chans=self.bundle.channels, image_size=self.image_size,
                               small_stem=s.small_stem, **s.kwargs)

    def new_method(self) -> Method:
        """Initialised as build() does, leaving the global RNG as it was (training after it stays bit-identical)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.spec.seed)
            return create_method(self.spec.method.name, self.new_backbone(), self.bundle.num_classes,
                                 **self.spec.method.params)


def _get_dataset(env: RunEnv, name: str, params: dict[str, Any] | None = None) -> DatasetBundle:
    return create_dataset(name, env.suite.data_root, env.suite.download, **(params or {}))


def pending_evaluations(spec: RunSpec, suite: Suite, done: set[tuple[str, str]]) -> list[tuple[EvalSpec, str]]:
    todo = [(e, eval_key(e.name, e.params)) for e in suite.evaluations]
    return [(e, k) for e, k in todo if (spec.run_id, k) not in done]


def execute_run(spec: RunSpec, env: RunEnv, done: set[tuple[str, str]]) -> None:
    """One run, with its experiment loggers (output.loggers, rank 0: opened on first use, closed at the end)."""
    loggers = RunLoggers(env.suite.output.get("loggers", []), env.out_dir / "runs" / spec.run_id, spec.run_id,
                         env.suite.name, spec.config(), enabled=dist.is_main())
    try:
        _execute_run(spec, env, done, loggers)
    finally:
        loggers.close()


def _execute_run(spec: RunSpec, env: RunEnv, done: set[tuple[str, str]], loggers: RunLoggers) -> None:
    todo = pending_evaluations(spec, env.suite, done)
    if not todo:
        say(f"[skip] {spec.run_id}: every evaluation already recorded")
        return
    run_dir = env.out_dir / "runs" / spec.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    if dist.is_main():  # this process holds the run: what a crashed writer left is garbage
        checkpoint.clean_run_tmp(run_dir)
        (run_dir / CRASH_FILE).unlink(missing_ok=True)  # a crash of an earlier attempt: this one starts over
    recorder = RunRecorder(spec, env.store, env.suite.name, env.claim.check if env.claim else None, env.device,
                           trains=METHODS.get(spec.method.name).trainable and spec.method.trained)
    recorder.on_record = loggers.log_results  # every result row to the loggers too
    say(f"[run] {spec.run_id}")
    try:
        bundle = _get_dataset(env, spec.dataset.name, spec.dataset.params)
    except DatasetUnavailableError as exc:
        return recorder.fail_all(todo, str(exc))
    try:
        built = build(spec, bundle)
    except UserError as exc:  # e.g. a released checkpoint that does not fit this backbone: this run only
        print(f"warning: {spec.run_id}: {exc}", file=sys.stderr, flush=True)
        return recorder.fail_all(todo, str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug or an unexpected input: this run fails, visibly
        return recorder.crashed(exc, todo, run_dir)
    built.loggers = loggers
    try:
        stats, error = pretrain_or_load(built, env, run_dir)
    except UserError:  # a suite mistake only the data shows (e.g. pretrain.knn_monitor on multi-label data)
        raise
    except Exception as exc:  # noqa: BLE001
        return recorder.crashed(exc, todo, run_dir)
    recorder.extra = {"image_size": built.image_size, "split_info": bundle.split_info,
                      "pretrain_time_s": (stats or {}).get("train_time_s", 0.0), **built.method.record_info(),
                      **compute_record(stats, spec.pretrain["batch_size"], env.device),
                      **budget.record(spec.method, stats)}
    if error is not None:
        return recorder.fail_all(todo, error)
    if dist.is_main():  # evaluations run once, on rank 0 alone; the other ranks wait at the barrier below
        with dist.local_only():
            try:
                ctx, score = freeze_for_evaluation(built, env, run_dir, declared_kinds(e.name for e, _ in todo))
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001 - rank 0 alone: the others wait at the barrier
                recorder.crashed(exc, todo, run_dir, alone=True)
            else:
                recorder.set_collapse_score(score, collapsed=not score >= COLLAPSE_THRESHOLD)  # NaN: collapsed
                evaluate_all(todo, ctx, recorder, spec.seed)
    dist.barrier()


def build(spec: RunSpec, bundle: DatasetBundle) -> Built:
    """The run's method, initialised from the run seed (the same on every rank and in every process)."""
    image_size = spec.dataset.image_size or bundle.native_size
    built = Built(spec, bundle, image_size, METHODS.get(spec.method.name))
    torch.manual_seed(spec.seed)
    built.method = create_method(spec.method.name, built.new_backbone(), bundle.num_classes, **spec.method.params)
    return built


def pretrain_or_load(built: Built, env: RunEnv, run_dir: Path) -> tuple[dict | None, str | None]:
    """(stats, error): load final.pt when it is good, else train (resuming from checkpoint.pt) and save it.

    After training the weights are read back from final.pt into a fresh method: the evaluations then see
    exactly what a later --resume would load (same memory format, buffers, device and RNG state)."""
    spec, final = built.spec, run_dir / "final.pt"
    stats = load_stats(run_dir)
    trains = built.cls.trainable and spec.method.trained
    if trains and not _load_final(built, final):
        try:
            stats = _train(built, env, run_dir)
        except TrainingDiverged as exc:
            write_run_json(built, run_dir, stats)
            return stats, f"pretraining diverged: {exc}"
        if dist.is_main():
            checkpoint.save_atomic({"model": built.method.state_dict(), "stats": stats, **built.train_state}, final)
        dist.barrier()  # every rank reads the file rank 0 wrote
        if not _load_final(built, final):
            return stats, f"{final} did not load back after it was written"
    write_run_json(built, run_dir, stats)
    return stats, None


def _load_final(built: Built, final: Path) -> bool:
    """Replace built.method with a fresh one holding final.pt's weights; False (file set aside) if it is bad."""
    state = checkpoint.load_or_set_aside(final, FINAL_FALLBACK)
    if state is None:
        return False
    method = built.new_method()
    try:
        method.load_state_dict(state["model"])
    except Exception as exc:  # noqa: BLE001 - another architecture or a damaged dict: retrain
        checkpoint.set_aside(final, f"does not fit this run: {checkpoint.describe_error(exc)}", FINAL_FALLBACK)
        return False
    built.method = method
    return True


def _train(built: Built, env: RunEnv, run_dir: Path) -> dict:
    spec, bundle, p = built.spec, built.bundle, built.spec.pretrain
    recipes = [ViewRecipe.from_dict(v, f"methods.{spec.method.name}.augment") for v in spec.method.views]
    check_view_sizes(spec.method.views, built.image_size, f"methods.{spec.method.name}.augment")  # native sizes
    augment = MultiViewAugment(recipes, built.image_size, bundle.mean, bundle.std,
                               blur_small_images=spec.method.blur_small_images, compile=p["compile"])
    # SyncBN on a copy: evaluations that fine-tune the encoder afterwards (on rank 0 alone) must see
    # plain BatchNorm again; the state_dict keys are the same, so the weights are copied back after training.
    model = method = built.method
    note = built.cls.batch_norm_warning(dist.world_size(), bool(p["sync_bn"]))
    if note and dist.is_main():
        print(f"warning: {spec.run_id}: {note}", file=sys.stderr, flush=True)
    if dist.world_size() > 1 and p["sync_bn"]:
        model = convert_sync_batchnorm(copy.deepcopy(method), env.device)
    settings = TrainSettings(epochs=spec.method.epochs, batch_size=p["batch_size"], optim=spec.method.optim,
                             device=env.device, amp_dtype=env.amp_dtype, channels_last=p["channels_last"],
                             num_workers=p["num_workers"], seed=spec.seed, log_every=p["log_every"],
                             metrics_format=p["metrics_format"], progress=env.progress, compile=p["compile"],
                             prefetch=resolve_prefetch(p["prefetch"], env.device))
    plan = train_plan(spec.method.budget, spec.method.epochs, len(bundle.pretrain_images), p["batch_size"], dist.world_size(), run_dir,
                       env.resume, lambda: step_time_s(model, bundle.pretrain_images, augment, settings))
    settings = dataclasses.replace(settings, epochs=plan.epochs, total_steps=plan.total_steps)
    flops = flops_per_image(method, bundle.pretrain_images, augment, env.device) if dist.is_main() else None
    knn, online = training_monitors(p, model, bundle, built.image_size, env.device, spec.seed, plan.epochs)
    stats = pretrain(model, bundle.pretrain_images, augment, settings, run_dir, resume=env.resume,
                     label=f"{spec.method.name}/s{spec.seed}", on_epoch_end=epoch_hook(knn, env.claim),
                     online_head=online, on_step=step_hook(None, env.claim), logger=built.loggers)
    stats.update(flops_per_image=flops, **plan.stats())
    built.train_state = {"online_linear": online.state_dict()} if online is not None else {}
    dist.broadcast_module(model)  # one model on every rank (plain-BN running stats drift apart per rank)
    if model is not method:
        method.load_state_dict(model.state_dict())
    return stats


def freeze_for_evaluation(built: Built, env: RunEnv, run_dir: Path, kinds=None) -> tuple[EvalContext, float]:
    """The evaluation context around the frozen encoder and its collapse score on val features; one pass per
    (dataset, split, view) gives every feature kind in `kinds` (the probes' tokens too)."""
    spec, bundle = built.spec, built.bundle
    encoder = freeze(built.method.to(env.device).encoder())

    def get_dataset(name: str) -> DatasetBundle:
        return bundle if name == spec.dataset.name else _get_dataset(env, name)

    def new_encoder() -> nn.Module:
        torch.manual_seed(spec.seed)
        return built.new_backbone().to(env.device)

    features = feature_cache(encoder, get_dataset, image_size=built.image_size, in_chans=bundle.channels,
                             mean=bundle.mean, std=bundle.std, device=env.device,
                             num_workers=spec.pretrain["num_workers"], progress=progress_hook(env.progress),
                             kinds=kinds or {"pooled"}, seed=spec.seed)
    score = collapse_score(features(spec.dataset.name, "val")[0])
    ctx = EvalContext(encoder=encoder, feature_dim=encoder.num_features,
                      method_needs_labels=built.cls.needs_labels, seed=spec.seed, device=env.device,
                      pretrain=bundle, image_size=built.image_size, in_chans=bundle.channels, mean=bundle.mean,
                      std=bundle.std, out_dir=str(run_dir), get_dataset=get_dataset, features=features,
                      new_encoder=new_encoder, save_predictions=env.suite.output.get("predictions", True),
                      num_workers=spec.pretrain["num_workers"], progress=progress_hook(env.progress),
                      run_config=spec.config())
    return ctx, score


def evaluate_all(todo: list[tuple[EvalSpec, str]], ctx: EvalContext, recorder: RunRecorder, seed: int) -> None:
    for e, key in todo:
        t0 = time.perf_counter()
        with collect_evidence(ctx.save_predictions) as calls:  # per-image evidence for intervals and tests
            rows = run_evaluation(e, ctx, seed)
        save_evidence(rows, calls, ctx.out_dir, key)
        recorder.record(rows, e, key, time.perf_counter() - t0)


def run_evaluation(e: EvalSpec, ctx: EvalContext, seed: int) -> list[dict[str, Any]]:
    """The evaluation's rows, or one failed row naming the exception: one broken evaluation (a corrupt image,
    a bug in a plugin) never stops the suite. Interrupts propagate, and so does a full or read-only output
    disk, since nothing more could be recorded."""
    seed_everything(seed)  # each evaluation starts from the same RNG state, whatever ran before it
    try:
        evaluation = create_evaluation(e.name, **e.params)
        return with_recipe(evaluation.evaluate(ctx), evaluation.recipe(ctx.run_config))
    except Exception as exc:  # noqa: BLE001 - KeyboardInterrupt / SystemExit are BaseExceptions: not caught
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            raise
        error = one_line(exc)
    if dist.is_main():
        print(f"warning: evaluation {e.name} failed ({(error.splitlines() or [''])[0][:200]}); recorded as a "
              "failed row, going on", file=sys.stderr, flush=True)
    return [{"status": "failed", "error": error}]


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
