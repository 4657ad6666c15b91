"""Inference off the event loop: requests wait in a bounded queue; one worker thread takes the
oldest, with up to ``batch - 1`` more waiting for the same model at the same image size while
their costs (pixels) stay within the batch's ``budget``, runs them as one batch and hands each
request its result. A full queue (too many requests, or too many pixels, waiting) refuses at
once (:class:`QueueFull`), so memory stays bounded however many clients send: one batch of at
most ``budget`` pixels (or one image over it, alone) runs at a time, and at most
``waiting_budget`` pixels wait."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

RunBatch = Callable[[str, Sequence[Any]], Sequence[Any]]  # (model, inputs) -> one result each


class QueueFull(Exception):
    """The queue holds as many requests as it may."""


@dataclass
class Result:
    """What the worker hands back for one request."""

    value: Any
    seconds: float  # the batch's inference time
    batch: int  # how many requests ran in that batch


@dataclass
class _Job:
    model: str
    key: Hashable  # requests with the same key can run in one batch
    item: Any
    cost: int  # what the item weighs against the budgets: its pixels
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future = field(repr=False)


class BatchingQueue:
    """``submit`` from the event loop, ``await`` the returned future. ``run_batch(model, items)``
    runs in the worker thread and returns one result per item."""

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        size: int = 32,
        batch: int = 4,
        budget: int | None = None,
        waiting_budget: int | None = None,
    ):
        if size < 1 or batch < 1:
            raise ValueError("queue size and batch size must be at least 1")
        self.run_batch, self.size, self.batch = run_batch, size, batch
        # None: unbounded. An item over ``budget`` runs alone; one over ``waiting_budget`` is
        # taken only into an empty queue.
        self.budget, self.waiting_budget = budget, waiting_budget
        self.waiting_cost = 0
        self._waiting: deque[_Job] = deque()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.batch_seconds = 0.0  # a moving average of one batch's time, for Retry-After

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="seglab-inference", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in progress, refuse what still waits, and end the worker."""
        with self._condition:
            self._stopping = True
            left = list(self._waiting)
            self._waiting.clear()
            self.waiting_cost = 0
            self._condition.notify_all()
        for job in left:
            _hand_back(job, error=RuntimeError("the server is shutting down"))
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, model: str, key: Hashable, item: Any, cost: int = 1) -> asyncio.Future:
        """Queue ``item`` (weighing ``cost``) for ``model``; QueueFull when the queue is stopped,
        holds ``size`` requests, or would hold more than ``waiting_budget``."""
        loop = asyncio.get_running_loop()
        job = _Job(model, (model, key), item, cost, loop, loop.create_future())
        with self._condition:
            if self._stopping or len(self._waiting) >= self.size:
                raise QueueFull
            bounded = self.waiting_budget is not None and bool(self._waiting)
            if bounded and self.waiting_cost + cost > self.waiting_budget:
                raise QueueFull
            self._waiting.append(job)
            self.waiting_cost += cost
            self._condition.notify()
        return job.future

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained a batch's worth: at least 1."""
        batches = max(1, self.waiting // self.batch)
        return max(1, round(batches * self.batch_seconds))

    def _next_batch(self) -> list[_Job] | None:
        with self._condition:
            while not self._waiting and not self._stopping:
                self._condition.wait()
            if self._stopping:
                return None
            first = self._waiting.popleft()
            jobs, cost = [first], first.cost
            for job in list(self._waiting):
                if len(jobs) == self.batch:
                    break
                fits = self.budget is None or cost + job.cost <= self.budget
                if job.key == first.key and fits:
                    self._waiting.remove(job)
                    jobs.append(job)
                    cost += job.cost
            self.waiting_cost -= sum(job.cost for job in jobs)
            return jobs

    def _work(self) -> None:
        while (jobs := self._next_batch()) is not None:
            start = time.perf_counter()
            try:
                values = self.run_batch(jobs[0].model, [job.item for job in jobs])
            except Exception as err:  # the model failed: each waiting request gets the error
                for job in jobs:
                    _hand_back(job, error=err)
                continue
            seconds = time.perf_counter() - start
            self.batch_seconds = 0.8 * self.batch_seconds + 0.2 * seconds
            for job, value in zip(jobs, values):
                _hand_back(job, Result(value, seconds, len(jobs)))


def _hand_back(job: _Job, result: Result | None = None, error: BaseException | None = None):
    def settle() -> None:
        if job.future.done():  # the client went away and the request was cancelled
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    with contextlib.suppress(RuntimeError):  # a closed event loop: nobody waits any more
        job.loop.call_soon_threadsafe(settle)
