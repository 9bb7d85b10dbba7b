"""Run a generator ahead of its consumer in a thread, through a bounded queue: the producer's
work (decoding, face analysis, motion) overlaps the consumer's (rendering), and memory holds
at most ``depth`` items; and map a function over items on several threads, in order."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["ahead", "ordered_map"]

T = TypeVar("T")
R = TypeVar("R")

_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def ahead(items: Iterable[T], depth: int, name: str = "prefetch") -> Iterator[T]:
    """The items of ``items`` in order, produced by a thread that keeps at most ``depth`` of
    them waiting. An exception in the producer is raised in the consumer at the item where it
    happened; a consumer that stops early (``close()``, an exception) stops the producer.

    Raises:
        ValueError: ``depth`` is below 1.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    waiting: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer
            put(_Failed(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while (item := waiting.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def ordered_map(make: Callable[[], Callable[[T], R]], items: Iterable[T], workers: int,
                name: str = "map") -> Iterator[R]:
    """``fn(item)`` of each item, in order, computed by ``workers`` threads, each with its own
    ``fn = make()`` (made in that thread: a function with its own state, such as its own
    face mesh); at most ``2 * workers`` items are taken ahead of the consumer. With one
    worker, this thread computes them one by one. An exception is raised at its item; a
    consumer that stops early cancels the items not started and waits for the others.

    Raises:
        ValueError: ``workers`` is below 1.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1:
        fn = make()
        yield from (fn(item) for item in items)
        return
    local = threading.local()

    def call(item: T) -> R:
        if not hasattr(local, "fn"):
            local.fn = make()
        return local.fn(item)

    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        try:
            for item in items:
                pending.append(pool.submit(call, item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
