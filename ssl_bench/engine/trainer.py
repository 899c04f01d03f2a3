"""The pretraining loop. It knows the Method contract, never a specific method."""
from __future__ import annotations

import inspect
import dataclasses
import contextlib
import math
import warnings
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ssl_bench import distributed as dist
from ssl_bench.data.loader import iterate_batches, num_batches
from ssl_bench.data.types import ImageSet
from ssl_bench.errors import UserError
from ssl_bench.method import Method, TrainProgress
from ssl_bench.engine import checkpoint
from ssl_bench.engine.device import device_name, peak_memory_mb
from ssl_bench.engine.ema import ema_update
from ssl_bench.engine.metrics_log import MetricsLog
from ssl_bench.engine.online_head import OnlineLinear
from ssl_bench.engine.optim import build_optimizer, clip_gradients, schedule_step
from ssl_bench.engine.prefetch import prepared_batches
from ssl_bench.engine.progress import TrainingBar
from ssl_bench.engine.schedules import scaled_lr, warmup_cosine


def channels_last_safe(model: nn.Module, device: torch.device) -> bool:
    """CPU oneDNN channels_last crashed (heap corruption) here for 4-channel convs; 8-multiples ran fine."""
    if device.type != "cpu":
        return True
    return all(m.out_channels % 8 == 0 for m in model.modules() if isinstance(m, nn.Conv2d))


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run is recorded as failed."""


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int  # global batch; each rank takes batch_size / world_size
    optim: dict[str, Any]
    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = True
    num_workers: int = 0
    seed: int = 0
    log_every: int = 10
    metrics_format: str = "jsonl"
    progress: bool = True
    compile: bool = False
    # a budget in steps (images seen, wall time: ssl_bench/budget.py); epochs then becomes the number of epochs
    # it starts (the last one may be partial). None: epochs x steps per epoch, as without a budget.
    total_steps: int | None = None
    # build the next batch's views in a background thread (a side stream on CUDA) while the step runs
    # (engine/prefetch.py); bit-identical either way. pretrain_run resolves the suite's "auto" per device.
    prefetch: bool = False


def _wrap(model: Method, s: TrainSettings) -> nn.Module:
    if dist.world_size() == 1:
        return torch.compile(model) if s.compile else model
    ids = [s.device.index] if s.device.type == "cuda" else None
    # Only trainable parameters are reduced (BYOL/MoCo targets have requires_grad=False, so DDP skips them).
    # No per-step buffer broadcast: SyncBN statistics and MoCo's queue are identical on every rank already,
    # and pretrain_run broadcasts rank 0's model once after training (plain-BN running stats).
    ddp = nn.parallel.DistributedDataParallel
    no_sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp).parameters \
        else "broadcast_buffers"  # torch >= 2.14 renamed the flag
    return ddp(model, device_ids=ids, **{no_sync: False})


@dataclass
class _Loop:
    """What every epoch of one pretrain() call shares; built by setup_loop."""

    model: Method
    net: nn.Module  # the model as trained: DDP- or compile-wrapped, or the model itself
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    s: TrainSettings
    per_rank: int  # images per rank per step
    total: int  # steps of the whole schedule
    warmup: int
    peak: float
    ckpt_path: Path
    log: MetricsLog
    progress: TrainingBar | None = None
    head: OnlineLinear | None = None  # the online linear head, when the suite asks for one
    steps_per_epoch: int = 0
    on_step: Callable[[int], None] | None = None
    logger: Any = None  # engine.loggers.RunLoggers: per-step and per-epoch values to the suite's loggers


def pretrain(model: Method, data: ImageSet, augment: Callable[[torch.Tensor, torch.Generator], list[torch.Tensor]],
             s: TrainSettings, run_dir: Path, resume: bool = False, label: str = "",
             on_epoch_end: Callable[[int], dict[str, Any]] | None = None,
             online_head: OnlineLinear | None = None,
             on_step: Callable[[int], None] | None = None, logger: Any = None) -> dict[str, Any]:
    """Train `model` in place; checkpoint every epoch; resume from run_dir/checkpoint.pt if asked (one that does
    not load or fit is moved aside with a warning, and training starts from the first epoch).

    `on_epoch_end(epoch)` runs after each epoch on every rank; what it returns joins that epoch's metrics row
    (the kNN monitor, evalkit.monitors.KnnMonitor). `online_head` is trained on the encoder's detached features
    after every step and checkpointed with the model (engine.online_head); the model's training is bit-identical
    with or without either. `on_step(step)` runs on the training thread after each optimizer step, with the
    1-based global step number (a clock for benchmarks: with s.prefetch the augmentation runs on another thread).
    `logger` (rank 0's, engine.loggers.RunLoggers) gets loss, lr, tau and images/s every log_every steps."""
    loop = setup_loop(model, len(data), s, Path(run_dir))
    loop.head, loop.on_step, loop.logger = online_head, on_step, logger
    try:
        return _run(loop, data, augment, resume, label, on_epoch_end)
    finally:
        if online_head is not None:
            online_head.close()


def _run(loop: _Loop, data: ImageSet, augment: Callable, resume: bool, label: str,
         on_epoch_end: Callable[[int], dict[str, Any]] | None) -> dict[str, Any]:
    start_epoch, step = _restore(loop) if resume else (0, 0)
    if dist.is_main():
        loop.log.keep_before(start_epoch)
    main = dist.is_main()
    loop.progress = TrainingBar(label, loop.total, step, loop.s.epochs, loop.s.progress and main,
                                  loop.logger if main else None)
    t_start, images_seen = time.perf_counter(), 0
    for epoch in range(start_epoch, loop.s.epochs):
        row = _train_epoch(loop, data, augment, epoch, step)
        step, images_seen = row["step"], images_seen + row.pop("images")
        if loop.head is not None:
            row.update(loop.head.epoch_stats())
        if on_epoch_end is not None:
            row.update(on_epoch_end(epoch))
        _end_epoch(loop, row, epoch)
    loop.progress.close()
    wall = time.perf_counter() - t_start
    rows = loop.log.rows() if dist.is_main() else []
    return {"train_time_s": wall, "steps": step, "final_loss": rows[-1]["loss"] if rows else None,
            "images_per_s": images_seen / wall if wall > 0 and images_seen else None,
            # every logged epoch, those before a resume included (compute.compute_record)
            "train_wall_total_s": sum(r.get("time_s", 0.0) for r in rows),
            "device": device_name(loop.s.device), "device_count": dist.world_size(),
            "peak_memory_mb": peak_memory_mb(loop.s.device)}


def setup_loop(model: Method, n_images: int, s: TrainSettings, run_dir: Path) -> _Loop:
    """Schedule sizes, device and memory format, the wrapped model, a fresh optimizer and grad scaler."""
    ws = dist.world_size()
    per_rank = s.batch_size // ws
    steps_per_epoch = num_batches(n_images, per_rank, True, ws)
    if steps_per_epoch == 0:
        raise UserError(f"pretrain.batch_size: {s.batch_size} is larger than the training split ({n_images} "
                        "images); allowed: a batch size at most the training-split size")
    model.to(s.device)
    if s.channels_last and not channels_last_safe(model, s.device):
        warnings.warn("channels_last disabled: on CPU it corrupts memory in oneDNN for convolutions whose "
                      "channel counts are not multiples of 8 (seen with torch 2.14.1); widen the backbone to use it")
        s = dataclasses.replace(s, channels_last=False)
    if s.channels_last:
        model.to(memory_format=torch.channels_last)
    net = _wrap(model, s)
    peak = scaled_lr(s.optim["base_lr"], s.batch_size)
    opt, scaler = _fresh_optimizer(model, s, peak)
    if s.total_steps is not None:
        s = dataclasses.replace(s, epochs=math.ceil(s.total_steps / steps_per_epoch))
    total = s.epochs * steps_per_epoch if s.total_steps is None else s.total_steps
    return _Loop(model, net, opt, scaler, s, per_rank, total, round(s.optim["warmup_epochs"] * steps_per_epoch),
                 peak, run_dir / "checkpoint.pt", MetricsLog(run_dir, s.metrics_format),
                 steps_per_epoch=steps_per_epoch)


def _fresh_optimizer(model: Method, s: TrainSettings, peak: float) -> tuple[torch.optim.Optimizer,
                                                                            torch.amp.GradScaler]:
    return build_optimizer(model, s.optim, peak), torch.amp.GradScaler(s.device.type,
                                                                       enabled=s.amp_dtype == torch.float16)


def _restore(loop: _Loop) -> tuple[int, int]:
    """(epoch, step) to continue from: checkpoint.pt's when it loads and fits this run, else (0, 0) with the
    model, optimizer and scaler as fresh as if there had been no checkpoint."""
    fallback = "training this run from its first epoch"
    state = checkpoint.load_or_set_aside(loop.ckpt_path, fallback, loop.s.device)
    if state is None:
        return 0, 0
    initial = {k: v.clone() for k, v in loop.model.state_dict().items()}
    try:
        if int(state.get("total", loop.total)) != loop.total:  # trained on another schedule (another budget)
            raise ValueError(f"its schedule has {state['total']} steps, this run's {loop.total}")
        loop.model.load_state_dict(state["model"])
        loop.opt.load_state_dict(state["optimizer"])
        loop.scaler.load_state_dict(state["scaler"])
        if loop.head is not None:  # a checkpoint without the head (KeyError) does not fit this run
            loop.head.load_state_dict(state["online_linear"])
        return int(state["epoch"]), int(state["step"])
    except Exception as exc:  # noqa: BLE001 - a checkpoint of another shape or version: start over
        loop.model.load_state_dict(initial)  # load_state_dict may have copied some tensors before failing
        loop.opt, loop.scaler = _fresh_optimizer(loop.model, loop.s, loop.peak)
        if loop.head is not None:
            loop.head.reset()
        checkpoint.set_aside(loop.ckpt_path, f"does not fit this run: {checkpoint.describe_error(exc)}", fallback)
        return 0, 0


def _train_epoch(loop: _Loop, data: ImageSet, augment: Callable, epoch: int, step: int) -> dict[str, Any]:
    """One epoch of steps; returns its metrics row (plus `images`, the global count it trained on)."""
    s, model = loop.s, loop.model
    ws, rank = dist.world_size(), dist.rank()
    loop.net.train()
    order = torch.Generator().manual_seed(s.seed * 1_000_003 + epoch)  # same on all ranks
    aug_gen = torch.Generator(device=s.device).manual_seed(s.seed * 1_000_003 + epoch * 7919 + rank + 1)
    loss_sum, n, t0, tau, lr = torch.zeros((), device=s.device), 0, time.perf_counter(), 1.0, 0.0
    pairs = model.momentum_pairs()
    batches = iterate_batches(data, loop.per_rank, shuffle=True, generator=order, drop_last=True, device=s.device,
                              num_workers=s.num_workers, rank=rank, world_size=ws, epoch=epoch)
    limit = min(loop.steps_per_epoch, max(loop.total - step, 0))  # a budget in steps ends inside an epoch
    with prepared_batches(batches, lambda images: make_views(s, augment, images, aug_gen), s.device, s.prefetch,
                          limit) as prepared:  # no batch past the budget is drawn, nor augmented ahead
        for views, labels in prepared:
            loss, lr, step_tau = model_step(loop, views, labels, pairs, step)
            tau = tau if step_tau is None else step_tau
            loss_sum += loss.detach().float()
            n, step = n + 1, step + 1
            if loop.on_step is not None:
                loop.on_step(step)
            if step % s.log_every == 0 and loop.progress.wanted:  # the only host sync inside the epoch
                loop.progress.step(step, epoch, loss.detach().float(), loss_sum / n, lr, step_tau,
                                   n * loop.per_rank * ws / (time.perf_counter() - t0))
    epoch_loss = (dist.all_reduce_mean(loss_sum) / max(n, 1)).item()  # global mean: every rank agrees
    elapsed = time.perf_counter() - t0
    if not math.isfinite(epoch_loss):
        loop.progress.close()
        raise TrainingDiverged(f"loss became {epoch_loss} in epoch {epoch + 1}")
    images = n * loop.per_rank * ws
    row = {"epoch": epoch, "step": step, "loss": epoch_loss, "lr": lr, "tau": tau,
           "images_per_s": images / elapsed, "time_s": elapsed, "images": images}
    return row | ({"partial": True, "epoch_steps": n} if n < loop.steps_per_epoch else {})


def make_views(s: TrainSettings, augment: Callable, images: Any, aug_gen: torch.Generator) -> list[torch.Tensor]:
    """The augmented views of one batch, in the model's memory format (run inline or in the prefetch thread)."""
    views = augment(images, aug_gen)
    if s.channels_last:
        views = [x.contiguous(memory_format=torch.channels_last) for x in views]
    return views


def train_step(loop: _Loop, augment: Callable, images: torch.Tensor, labels: torch.Tensor,
               aug_gen: torch.Generator, pairs: list, step: int) -> tuple[torch.Tensor, float, float | None]:
    """Augment a batch, then model_step (engine.compute.step_time_s times this serial form)."""
    return model_step(loop, make_views(loop.s, augment, images, aug_gen), labels, pairs, step)


def model_step(loop: _Loop, views: list[torch.Tensor], labels: torch.Tensor, pairs: list,
               step: int) -> tuple[torch.Tensor, float, float | None]:
    """Optimizer step number `step` (0-based) of the schedule on ready views: (loss, lr, tau; None without EMA
    pairs). No host sync, except torch's own in a float16 GradScaler's step (its inf check calls .item())."""
    s, model, opt, scaler = loop.s, loop.model, loop.opt, loop.scaler
    lr = schedule_step(opt, s.optim, step, loop.total, loop.warmup, loop.peak)
    per_epoch = max(loop.steps_per_epoch, 1)
    model.set_progress(TrainProgress(step, loop.total, step // per_epoch, per_epoch))  # epochs before are whole
    capture = loop.head.capture() if loop.head is not None else contextlib.nullcontext()
    with torch.autocast(s.device.type, dtype=s.amp_dtype or torch.float32, enabled=s.amp_dtype is not None), \
            capture:
        out = loop.net(views, labels if model.needs_labels else None)
    opt.zero_grad(set_to_none=True)
    scaler.scale(out["loss"]).backward()
    if s.optim.get("clip_grad") is not None:  # on the true gradients: unscaled first [DINO main_dino.py]
        scaler.unscale_(opt)
        clip_gradients((p for g in opt.param_groups for p in g["params"]), s.optim["clip_grad"],
                       s.optim.get("clip_mode", "total"))
    model.before_optimizer_step()  # e.g. frozen layers: p.grad = None (after clipping, as DINO does)
    scaler.step(opt)
    scaler.update()
    tau = None
    if pairs:
        tau = model.momentum_at(step, loop.total)
        ema_update(pairs, tau)
    if loop.head is not None:  # after the model's step: nothing it does can reach the encoder's update
        loop.head.step(labels, warmup_cosine(step, loop.total, loop.warmup, loop.head.peak))
    return out["loss"], lr, tau


def _end_epoch(loop: _Loop, row: dict[str, Any], epoch: int) -> None:
    """Log the epoch and checkpoint it (rank 0), then wait for every rank."""
    if dist.is_main():
        loop.log.append(row)
        loop.progress.epoch(row)
        state = {"model": loop.model.state_dict(), "optimizer": loop.opt.state_dict(),
                 "scaler": loop.scaler.state_dict(), "epoch": epoch + 1, "step": row["step"], "total": loop.total}
        if loop.head is not None:
            state["online_linear"] = loop.head.state_dict()
        checkpoint.save_atomic(state, loop.ckpt_path)
    dist.barrier()
