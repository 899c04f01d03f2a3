"""Progress display (tqdm): bars with an ETA on a terminal; one line per epoch or phase in logs.

On a terminal a bar redraws in place (carriage returns). When stderr is a file or a pipe (a launcher's worker
log, `2> log`, CI) nothing is drawn in place: the bar's state (done / total, elapsed < remaining, rate) is
written as one plain line at each epoch of training, at each step of an evaluation phase that calls `note()`
and when a phase ends. Under --quiet nothing is shown (the no-op engine of evaluation.ProgressTask). The
numbers (rate, ETA) are tqdm's, over the work done in this process (`initial` counts what a resume skipped).
"""
from __future__ import annotations

import sys
from typing import IO, Any, Callable

from tqdm import tqdm

from ssl_bench.evaluation import ProgressTask, no_progress

# A log line: no bar characters and no carriage return.
LINE_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class _Sink:
    """Where an undrawn bar writes (its state still advances; Bar.line prints it)."""

    def write(self, s: str) -> None:
        pass

    def flush(self) -> None:
        pass


def is_terminal(stream: IO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


class Bar(ProgressTask):
    """One tqdm bar on `stream` (stderr): drawn in place on a terminal, else a line per `note()` and at close."""

    def __init__(self, desc: str, total: int, unit: str = "it", initial: int = 0, leave: bool = False,
                 stream: IO | None = None):
        self.stream = stream or sys.stderr
        self.tty = is_terminal(self.stream)
        self.closed, self.shown = False, None  # shown: the count of the last line written
        # smoothing 0: the rate (and ETA) is the mean over this process's work, not the last few updates
        self.bar = tqdm(total=max(int(total), 0), initial=initial, desc=desc, unit=unit, leave=leave,
                        file=self.stream if self.tty else _Sink(), dynamic_ncols=True, smoothing=0,
                        mininterval=0.2 if self.tty else float("inf"))

    def update(self, n: int = 1, **info: Any) -> None:
        if info:
            self.bar.set_postfix(info, refresh=False)
        self.bar.update(n)

    def goto(self, n: int, **info: Any) -> None:
        """Set the count to `n` (the trainer reports its global step)."""
        self.update(n - self.bar.n, **info)

    def note(self, **info: Any) -> None:
        if info:
            self.bar.set_postfix(info, refresh=False)
        if self.tty:
            self.bar.refresh()
        else:
            self.line()

    def line(self) -> str:
        text = self.bar.format_meter(**{**self.bar.format_dict, "bar_format": LINE_FORMAT})
        self.stream.write(text + "\n")
        self.stream.flush()
        self.shown = self.bar.n
        return text

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.tty and self.shown != self.bar.n:  # the last epoch's line already says it
            self.line()
        self.bar.close()


def progress_hook(enabled: bool) -> Callable[..., ProgressTask]:
    """EvalContext.progress: a Bar per phase when progress is shown, else the no-op."""
    if not enabled:
        return no_progress

    def progress(desc: str, total: int, unit: str = "it") -> ProgressTask:
        return Bar(desc, total, unit)

    return progress


class TrainingBar:
    """Pretraining's bar (steps of the whole schedule, with its ETA; a line per epoch in logs) and its loggers'
    per-step values (engine/loggers). `wanted`: whether step() needs values at all (a host sync)."""

    def __init__(self, label: str, total: int, start_step: int, epochs: int, enabled: bool,
                 logger: Any = None):
        self.bar = Bar(label, total, "step", initial=start_step) if enabled else None
        self.epochs, self.logger = epochs, logger
        self.wanted = enabled or logger is not None
        if logger is not None:
            logger.begin(start_step)  # a resume continues the same logger run from this step

    def step(self, step: int, epoch: int, loss: Any, mean_loss: Any, lr: float, tau: float | None,
             images_per_s: float) -> None:
        if self.bar is not None:
            self.bar.goto(step, ep=f"{epoch + 1}/{self.epochs}", loss=f"{float(mean_loss):.4f}",
                          **{"img/s": f"{images_per_s:.0f}"})
        if self.logger is not None:
            values = {"train/loss": float(loss), "train/lr": lr, "train/images_per_s": images_per_s}
            self.logger.log(values | ({"train/tau": tau} if tau is not None else {}), step)

    def epoch(self, row: dict[str, Any]) -> None:
        """The end of an epoch (rank 0): a line in logs, the epoch row (kNN monitor included) to the loggers."""
        if self.bar is not None:
            self.bar.goto(row["step"], ep=f"{row['epoch'] + 1}/{self.epochs}", loss=f"{row['loss']:.4f}",
                          **{"img/s": f"{row['images_per_s']:.0f}"})
            self.bar.note()
        if self.logger is not None:
            self.logger.log(epoch_values(row), row["step"])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def epoch_values(row: dict[str, Any]) -> dict[str, float]:
    """An epoch's metrics row as logger values: the monitors' (knn_*, online_*) under monitor/, the rest
    under epoch/."""
    out = {}
    for key, value in row.items():
        if key in ("epoch", "step") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[f"monitor/{key}" if key.startswith(("knn_", "online_")) else f"epoch/{key}"] = float(value)
    return out
