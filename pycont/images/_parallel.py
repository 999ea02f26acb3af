"""Layers travel side by side: a few worker threads, one progress reporter drawn by its owner.

docker moves up to 3 layers at once on pull and 5 on push (dockerd's
``max-concurrent-downloads`` and ``max-concurrent-uploads`` defaults). Each worker has its
own HTTP connection (the caller gives each job its own transport). A reporter draws only
on the thread that made it (:mod:`pycont.images.progress`), so workers post their events to a
queue that the calling thread drains into the reporter while it waits for them.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from pycont.images.progress import Progress

__all__ = ["DOWNLOADS", "UPLOADS", "run_parallel"]

DOWNLOADS = 3
UPLOADS = 5
T = TypeVar("T")


class _Cancelled(Exception):
    """Another layer failed: this one stops at its next chunk."""


class _Relay(Progress):
    """What a worker reports with: every call becomes an event on the queue."""

    def __init__(self, events: queue.SimpleQueue[tuple[str, tuple[Any, ...]]]) -> None:
        self.events = events
        self.stop = threading.Event()

    def _post(self, name: str, *args: Any) -> None:
        if self.stop.is_set():
            raise _Cancelled
        self.events.put((name, args))

    def start(self, layer: str, total: int | None) -> None:
        self._post("start", layer, total)

    def advance(self, layer: str, n: int) -> None:
        self._post("advance", layer, n)

    def done(self, layer: str, status: str) -> None:
        self._post("done", layer, status)

    def note(self, text: str) -> None:
        self._post("note", text)


def _drain(events: queue.SimpleQueue[tuple[str, tuple[Any, ...]]], to: Progress) -> None:
    while True:
        try:
            name, args = events.get_nowait()
        except queue.Empty:
            return
        getattr(to, name, lambda *a: None)(*args)


def run_parallel(
    jobs: Sequence[Callable[[Progress], T]], workers: int, progress: Progress
) -> list[T]:
    """Run ``jobs`` (each given the reporter to use) on up to ``workers`` threads; their
    results in order. The first failure stops the others (at their next chunk) and is raised:
    the first in time, which is the cause (a registry that dies under one layer then refuses the
    next layer's connection; that second error is only a consequence)."""
    if len(jobs) <= 1 or workers <= 1:
        return [job(progress) for job in jobs]
    events: queue.SimpleQueue[tuple[str, tuple[Any, ...]]] = queue.SimpleQueue()
    relay = _Relay(events)
    failed_at: dict[int, float] = {}

    def timed(i: int, job: Callable[[Progress], T]) -> T:
        try:
            return job(relay)
        except BaseException:
            failed_at[i] = time.monotonic()
            raise

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pycont-layer") as pool:
        futures: list[Future[T]] = [pool.submit(timed, i, job) for i, job in enumerate(jobs)]
        try:
            while not all(f.done() for f in futures):
                try:
                    name, args = events.get(timeout=0.05)
                    getattr(progress, name, lambda *a: None)(*args)
                except queue.Empty:
                    pass
                if any(f.done() and f.exception() is not None for f in futures):
                    relay.stop.set()
                    for f in futures:
                        f.cancel()
        except BaseException:  # KeyboardInterrupt on the caller: stop the workers
            relay.stop.set()
            for f in futures:
                f.cancel()
            raise
    _drain(events, progress)
    failed = sorted((failed_at[i], i) for i, f in enumerate(futures) if i in failed_at)
    causes = [futures[i].exception() for _, i in failed]
    first = next((e for e in causes if not isinstance(e, _Cancelled)), None)
    if first is not None:
        raise first
    return [f.result() for f in futures]
