"""Build the next batch's views while the current step runs: a background thread takes batch k+1 from the epoch's
batch iterator and runs `prepare` (the augmentation and its memory-format conversion) on it while the training
thread runs step k.

Why a thread is enough: torch ops release the GIL, so the augmentation's kernels (CPU) or its launches (CUDA) run
beside the model step. Only the thread touches the batch iterator and the augmentation generator, one batch after
the other in the iterator's order, so the generator is consumed exactly as in the serial loop and training is
bit-identical with prefetch on or off.

On CUDA the thread works on its own stream. The training thread makes its current stream wait on an event recorded
after each batch's work before it uses the views, and marks every tensor it receives with record_stream, so that the
caching allocator does not hand their memory back to the side stream while the model step still reads it.
"""
from __future__ import annotations

import contextlib
import queue
import threading
import warnings
from itertools import islice
from typing import Any, Callable, Iterator

import torch

THREAD_NAME = "ssl-bench-prefetch"
_END = object()  # the iterator is exhausted
_JOIN_TIMEOUT_S = 60.0  # the thread finishes the batch it holds before it stops; a hung loader must not hang close()


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    """The tensors of a batch item: a tensor, or a list / tuple / dict of them (views, labels)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _tensors(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _tensors(x)


class Prefetcher:
    """Iterate (prepare(images), labels) over the first `limit` batches (None: all), each built in a background
    thread at most `ahead` batches before the training thread takes it. Use it as a context manager (or call
    close()): leaving the loop early, an exception in the step or a KeyboardInterrupt then stops and joins the
    thread. An exception raised in the thread (by the iterator or by `prepare`) is raised again, the same object,
    by __next__."""

    def __init__(self, batches: Iterator[tuple[Any, torch.Tensor]], prepare: Callable[[Any], Any],
                 device: torch.device, ahead: int = 1, limit: int | None = None):
        if ahead < 1:
            raise ValueError(f"ahead must be at least 1, not {ahead}")
        self._batches, self._prepare, self._limit = batches, prepare, limit
        self._items: queue.Queue = queue.Queue()  # bounded by the slots below
        self._slots = threading.Semaphore(ahead)  # batches the thread may build before the trainer takes one
        self._stop = threading.Event()
        self._done = False
        self._cuda = torch.device(device).type == "cuda"
        self._stream = None
        if self._cuda:
            index = torch.device(device).index
            self._index = torch.cuda.current_device() if index is None else index
            self._stream = torch.cuda.Stream(device=self._index)
            # whatever the training stream did before (data moved to the device) is visible to the side stream
            self._stream.wait_stream(torch.cuda.current_stream(self._index))
        self._thread = threading.Thread(target=self._work, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def _side_stream(self) -> contextlib.AbstractContextManager:
        if not self._cuda:
            return contextlib.nullcontext()
        ctx = contextlib.ExitStack()
        ctx.enter_context(torch.cuda.device(self._index))  # the CUDA device is per thread
        ctx.enter_context(torch.cuda.stream(self._stream))
        return ctx

    def _work(self) -> None:
        try:
            with self._side_stream():
                batches = islice(self._batches, self._limit)
                while True:
                    self._slots.acquire()
                    if self._stop.is_set():
                        return
                    item = next(batches, _END)
                    if item is _END:
                        self._items.put(_END)
                        return
                    images, labels = item
                    views = self._prepare(images)
                    event = None
                    if self._cuda:
                        event = torch.cuda.Event()
                        event.record(self._stream)
                    del images, item  # the uint8 batch is not needed any more: free it now
                    self._items.put((views, labels, event))
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread, which raises it
            self._items.put(_Failed(exc))
        finally:
            close = getattr(self._batches, "close", None)  # a generator: DataLoader workers shut down now
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def __iter__(self) -> "Prefetcher":
        return self

    def __next__(self) -> tuple[Any, torch.Tensor]:
        if self._done:
            raise StopIteration
        while True:
            try:
                item = self._items.get(timeout=1.0)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._items.empty():
                    self._done = True
                    raise RuntimeError("the prefetch thread ended without a batch or an error") from None
        if item is _END or isinstance(item, _Failed):
            self._done = True
            if isinstance(item, _Failed):
                raise item.exc
            raise StopIteration
        self._slots.release()  # the thread may build the next batch while this one trains
        views, labels, event = item
        if event is not None:
            current = torch.cuda.current_stream(self._index)
            current.wait_event(event)
            for t in _tensors((views, labels)):
                if t.device.type == "cuda":
                    t.record_stream(current)
        return views, labels

    def close(self) -> None:
        """Stop the thread after the batch it is building and join it; drop batches not taken."""
        self._stop.set()
        self._slots.release()  # wakes a thread waiting for a slot
        self._thread.join(_JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            warnings.warn(f"the prefetch thread did not stop within {_JOIN_TIMEOUT_S:.0f} s (a batch loader that "
                          "hangs?); leaving it as a daemon thread")
        while not self._items.empty():
            self._items.get_nowait()
        self._done = True

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextlib.contextmanager
def prepared_batches(batches: Iterator[tuple[Any, torch.Tensor]], prepare: Callable[[Any], Any],
                     device: torch.device, background: bool,
                     limit: int | None = None) -> Iterator[Iterator[tuple[Any, torch.Tensor]]]:
    """(prepare(images), labels) for the first `limit` batches (None: all): built in a Prefetcher thread when
    `background`, else inline on the calling thread (the serial loop). Either way the batch iterator is closed
    when the block ends (a DataLoader's workers stop then, not whenever the generator is collected)."""
    if background:
        with Prefetcher(batches, prepare, device, limit=limit) as fetched:
            yield fetched
        return
    try:
        yield ((prepare(images), labels) for images, labels in islice(batches, limit))
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def resolve_prefetch(setting: str | bool, device: torch.device) -> bool:
    """`pretrain.prefetch` for this device: true / false as given. "auto": on for CUDA, where the augmentation's
    many small kernels would otherwise be launched from the training thread; off elsewhere. On a quiet 2-core
    AVX2 CPU the thread took cores from the model step's intra-op threads: 0.91x (69.4 vs 76.2 img/s, median of
    3 alternating runs of `benchmarks/throughput.py --worker engine --config tiny --threads 2 --batch 256
    --steps 4 --warmup 1 --prefetch on|off`, 2026-11-30)."""
    if isinstance(setting, bool):
        return setting
    return torch.device(device).type == "cuda"
