"""Server-side batching: concurrent requests for the same signature run as one call.

Follows TF Serving's BasicBatchScheduler and its ``BatchingParameters`` (the text
``--batching_parameters_file``): a batch closes when it holds ``max_batch_size`` rows or
``batch_timeout_micros`` after its first request arrived; it is padded up to the next of
``allowed_batch_sizes`` (with copies of its first row, whose outputs are dropped) so the
model sees few distinct shapes; at most ``max_enqueued_batches`` batches wait, beyond that
requests get UNAVAILABLE; ``num_batch_threads`` batches run at once. A request larger than
``max_batch_size`` is refused, as TF Serving does without large-batch splitting.

If a batch fails on one request's bad input (bytes that are no image), its requests are rerun
one by one, so only the bad request fails.

The ``BatchingParameters`` message comes from ``serving.tf_serving_config`` (push writes the
same file); text files parse as the server parses them (unknown fields are errors).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import threading
import time
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from visionpipe.serving.servable import Code, Servable, ServingError
from visionpipe.serving.tf_serving_config import BATCHING_DEFAULTS, batching_parameters_class, check_batching

BatchingParameters = batching_parameters_class()


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """The parameters the scheduler uses, with TF Serving's defaults for unset fields."""

    max_batch_size: int = BATCHING_DEFAULTS["max_batch_size"]
    batch_timeout_micros: int = BATCHING_DEFAULTS["batch_timeout_micros"]
    max_enqueued_batches: int = BATCHING_DEFAULTS["max_enqueued_batches"]
    # TF Serving's default is the core count (BATCHING_DEFAULTS holds 1 only for its >= 1 check).
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> BatchingOptions:
        """From a text BatchingParameters; raises ValueError naming a bad field."""
        try:
            proto = text_format.Parse(text, BatchingParameters())
        except text_format.ParseError as err:
            raise ValueError(f"not a BatchingParameters text proto: {err}") from None
        problems = check_batching(proto)
        if problems:
            raise ValueError("; ".join(problems))
        values = {f: getattr(proto, f).value for f in BATCHING_DEFAULTS if proto.HasField(f)}
        return cls(**values, allowed_batch_sizes=tuple(proto.allowed_batch_sizes))

    @classmethod
    def from_file(cls, path: Path) -> BatchingOptions:
        return cls.parse(path.read_text())

    def padded_size(self, rows: int) -> int:
        return next((s for s in self.allowed_batch_sizes if s >= rows), rows)


@dataclasses.dataclass
class _Task:
    servable: Servable
    signature: str
    inputs: dict[str, np.ndarray]
    rows: int
    enqueued: float
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    outputs: dict[str, np.ndarray] | None = None
    error: Exception | None = None

    @property
    def key(self):
        return id(self.servable), self.signature


class Batcher:
    """Runs ``servable.run`` calls in batches; ``run`` blocks until its request's rows are back."""

    def __init__(self, options: BatchingOptions):
        self.options = options
        self._queue: collections.deque[_Task] = collections.deque()
        self._queued_rows = 0  # the rows of every queued task: what max_enqueued_batches limits
        self._cond = threading.Condition()
        self._closed = False
        self._stats = {"requests": 0, "rows": 0, "batches": 0, "padded_rows": 0, "split_reruns": 0}
        self._sizes: collections.Counter[int] = collections.Counter()
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
            for i in range(max(1, options.num_batch_threads))
        ]
        for thread in self._threads:
            thread.start()

    def run(self, servable: Servable, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        signature, _ = servable.signature(signature)
        rows = servable.rows(inputs)
        if rows > self.options.max_batch_size:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Task size {rows} is larger than maximum input batch size {self.options.max_batch_size}",
            )
        task = _Task(servable, signature, inputs, rows, time.monotonic())
        with self._cond:
            if self._closed:
                raise ServingError(Code.UNAVAILABLE, "the server is shutting down")
            if self._queued_rows + rows > self.options.max_enqueued_batches * self.options.max_batch_size:
                raise ServingError(
                    Code.UNAVAILABLE, "The batch scheduling queue to which this session was assigned is full"
                )
            self._queue.append(task)
            self._queued_rows += rows
            self._cond.notify()
        task.done.wait()
        if task.error is not None:
            raise task.error
        if task.outputs is None:  # _execute gives every task of a batch its outputs or an error
            raise ServingError(Code.INTERNAL, "the batch finished without this request's outputs")
        return task.outputs

    def stats(self) -> dict:
        """Counts so far: requests, rows, batches, padded_rows, split_reruns and batch_sizes
        (rows per batch, before padding -> how many batches)."""
        with self._cond:
            return {**self._stats, "batch_sizes": dict(self._sizes)}

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    # the scheduler ------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._execute(batch)

    def _next_batch(self) -> list[_Task] | None:
        timeout = self.options.batch_timeout_micros / 1e6
        with self._cond:
            while True:
                if self._closed and not self._queue:
                    return None
                if not self._queue:
                    self._cond.wait()
                    continue
                key, first = self._queue[0].key, self._queue[0]
                rows, full = self._fill(key)
                remaining = first.enqueued + timeout - time.monotonic()
                if full or remaining <= 0 or self._closed:
                    return self._take(key)
                self._cond.wait(remaining)

    def _fill(self, key) -> tuple[int, bool]:
        """Rows that would go into the batch for ``key`` now, and whether it is full."""
        rows = 0
        for task in self._queue:
            if task.key == key:
                if rows + task.rows > self.options.max_batch_size:
                    return rows, True
                rows += task.rows
        return rows, rows >= self.options.max_batch_size

    def _take(self, key) -> list[_Task]:
        batch, rows = [], 0
        keep: collections.deque[_Task] = collections.deque()
        for task in self._queue:
            if task.key == key and rows + task.rows <= self.options.max_batch_size:
                batch.append(task)
                rows += task.rows
            else:
                keep.append(task)
        self._queue = keep
        self._queued_rows -= rows
        return batch

    def _execute(self, batch: list[_Task]) -> None:
        first = batch[0]
        rows = sum(t.rows for t in batch)
        size = self.options.padded_size(rows)
        merged = {}
        for name in first.inputs:
            parts = [np.asarray(t.inputs[name]) for t in batch]
            pad = [np.repeat(parts[0][:1], size - rows, axis=0)] if size > rows else []
            merged[name] = np.concatenate(parts + pad)
        reruns = 0
        try:
            outputs = first.servable.run(first.signature, merged)
            start = 0
            for task in batch:
                task.outputs = {k: v[start : start + task.rows] for k, v in outputs.items()}
                start += task.rows
        except ServingError as err:
            if len(batch) == 1:
                first.error = err
            else:  # find the request at fault: only it fails
                reruns = len(batch)
                for task in batch:
                    try:
                        task.outputs = task.servable.run(task.signature, task.inputs)
                    except Exception as own:
                        task.error = own
        except Exception as err:
            for task in batch:
                task.error = ServingError(Code.INTERNAL, f"{type(err).__name__}: {err}")
        with self._cond:
            self._stats["requests"] += len(batch)
            self._stats["rows"] += rows
            self._stats["batches"] += 1
            self._stats["padded_rows"] += size - rows
            self._stats["split_reruns"] += reruns
            self._sizes[rows] += 1
        for task in batch:
            task.done.set()
