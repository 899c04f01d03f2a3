"""A dependency-free progress line: epoch, step, loss and images/s on stderr."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total_steps: int, enabled: bool = True):
        self.label, self.total, self.enabled = label, total_steps, enabled
        self.tty = sys.stderr.isatty()
        self.t0 = time.perf_counter()

    def update(self, step: int, epoch: int, epochs: int, loss: float, images_per_s: float) -> None:
        if not self.enabled:
            return
        frac = step / max(self.total, 1)
        bar = "#" * int(20 * frac)
        line = (f"{self.label} ep {epoch + 1}/{epochs} [{bar:<20}] {step}/{self.total} "
                f"loss {loss:.4f} {images_per_s:.0f} img/s {time.perf_counter() - self.t0:.0f}s")
        if self.tty:
            sys.stderr.write("\r" + line[:160])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
