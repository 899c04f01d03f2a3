"""Clean stops: SIGTERM (a preemption, scancel, a time limit, `kill`) is handled like Ctrl-C.

The handler raises `Terminated`, a KeyboardInterrupt, so every `finally` on the way out runs as it does for
Ctrl-C: the run's claim and any lock are released, temporaries removed; the command line then prints one line
and exits with TERM_EXIT (128 + 15, the shell's convention). Further SIGTERMs are ignored while that cleanup
runs (a scheduler's SIGKILL still ends it). `--launcher local` forwards the signal to its workers.
"""
from __future__ import annotations

import signal
import subprocess
import threading
from contextlib import contextmanager
from typing import Any, Iterator

TERM_EXIT = 143
INTERRUPT_EXIT = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived."""


def _raise(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the cleanup finish
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated (main thread only: signals are delivered there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def forward(procs: list[subprocess.Popen], exc: KeyboardInterrupt, grace_s: float = 60.0) -> None:
    """Pass SIGTERM (for Terminated) or SIGINT to the children still running and wait for their clean stop;
    a child still running after `grace_s` is killed."""
    sig = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    for p in procs:
        try:
            p.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
