"""Dynamic micro-batching in front of the fusion runner (as Triton's dynamic batcher).

Requests hand in their windows and await their own rows of the outputs. Pending windows
are collected until ``max_batch_windows`` are queued or ``max_wait_ms`` has passed since
the oldest pending request arrived; they are then concatenated along the window axis,
run through the session once, and the outputs are split back per request, in order.
Each window is independent in the model, so a request's rows do not depend on what they
were batched with (within float rounding, well under 1e-4).

A request larger than ``max_batch_windows`` is cut across consecutive runs and gets its
rows back joined in order. Windows are packed first come, first served: a small request
queued behind a long one shares the long one's last run instead of waiting for all of it.

One session run at a time, on one dedicated thread (never on the event loop): on CPU the
session already uses its ``intra_op_threads`` and the few cores left go to the
preprocessing workers, so concurrent runs only contend; serial runs let windows that
arrive meanwhile queue up and go together into the next run, which is where batching
pays, with no wait at all under load. ORT sessions are thread-safe, so the runner may
still be called directly elsewhere (warm-up).

With ``max_wait_ms == 0`` or ``max_batch_windows == 1`` nothing could be merged without
adding latency, so each request runs alone and at once, concurrently, exactly as the
unbatched runner did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import TypeVar

import anyio
import numpy as np

from app.errors import OverloadedError
from app.fusion.runner import FusionOutput, FusionRunner
from app.metrics import Metrics
from app.windows import WindowBatch

log = logging.getLogger("app.fusion")

# time stop() lets queued windows finish before failing what is left: a full queue (workers
# plus waiting requests, each up to 3 h = 216 windows) is ~1300 windows, ~4 s at 3 ms each on CPU
DEFAULT_STOP_TIMEOUT_S = 10.0

# what is cut and joined along the window axis: the model's inputs and its outputs
Rows = TypeVar("Rows", WindowBatch, FusionOutput)


def _stopping() -> OverloadedError:
    return OverloadedError("the service is stopping")


@dataclass(eq=False)  # identity: a request is found in the queue by itself, never by value
class _Request:
    windows: WindowBatch
    future: asyncio.Future[FusionOutput]
    arrived: float  # loop time
    taken: int = 0  # leading windows already handed to a run
    parts: list[FusionOutput] = field(default_factory=list)  # outputs of the runs so far, in order

    @property
    def remaining(self) -> int:
        return self.windows.size - self.taken


@dataclass(frozen=True)
class _Share:
    """Rows [start, stop) of one request that go into one run."""

    request: _Request
    start: int
    stop: int


class FusionBatcher:
    """Merges the windows of concurrent requests into shared fusion session runs."""

    def __init__(
        self,
        runner: FusionRunner,
        metrics: Metrics,
        max_batch_windows: int,
        max_wait_ms: float,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    ) -> None:
        if max_batch_windows < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_windows >= 1 and max_wait_ms >= 0")
        self.runner = runner
        self.metrics = metrics
        self.max_batch_windows = max_batch_windows
        self.max_wait_s = max_wait_ms / 1000
        self.stop_timeout_s = stop_timeout_s
        self.session_runs = 0  # runs started, failed ones included
        self._pending: deque[_Request] = deque()
        self._queued_windows = 0  # windows in _pending not yet handed to a run
        self._in_flight: list[_Share] = []
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    @property
    def batching(self) -> bool:
        return self.max_wait_s > 0 and self.max_batch_windows > 1

    async def start(self) -> None:
        if self._worker is not None or self._closing:
            raise RuntimeError("a batcher starts once")
        if not self.batching:
            return
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="fusion-batch")
        self._worker = asyncio.get_running_loop().create_task(self._serve(), name="fusion-batcher")

    async def stop(self) -> None:
        """Refuse new requests, finish the queued ones (at most ``stop_timeout_s``), fail the rest."""
        self._closing = True
        worker, self._worker = self._worker, None
        if worker is None:
            return
        assert self._wakeup is not None and self._executor is not None
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(worker), self.stop_timeout_s)
        except TimeoutError:
            log.warning("fusion batcher: queued windows not done in %.1f s, failing them", self.stop_timeout_s)
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        except Exception as exc:  # a bug in the batcher must not keep the app from stopping
            log.error("fusion batcher failed: %s", type(exc).__name__, exc_info=exc)
        finally:
            # whatever is left (a run stuck in the session, or windows it never reached) fails now
            self._fail([share.request for share in self._in_flight] + list(self._pending), _stopping())
            # a stuck run's thread cannot be interrupted: let it end on its own, wait for nothing
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def run(self, windows: WindowBatch) -> FusionOutput:
        """The fusion outputs of ``windows``, as ``FusionRunner.run`` gives them."""
        if self._closing:
            raise _stopping()
        if not self.batching or windows.size == 0:
            return await self._run_alone(windows)
        if self._worker is None or self._wakeup is None:
            raise RuntimeError("FusionBatcher.run before start()")
        loop = asyncio.get_running_loop()
        request = _Request(windows=windows, future=loop.create_future(), arrived=loop.time())
        self._pending.append(request)
        self._queued_windows += windows.size
        self._wakeup.set()
        try:
            return await request.future
        except asyncio.CancelledError:
            self._drop(request)  # the caller is gone: its windows not yet run need not be
            raise

    async def _run_alone(self, windows: WindowBatch) -> FusionOutput:
        self._observe(windows=windows.size, requests=1)
        return await anyio.to_thread.run_sync(self.runner.run, windows)

    def _observe(self, windows: int, requests: int) -> None:
        self.session_runs += 1
        self.metrics.fusion_batch_windows.observe(windows)
        self.metrics.fusion_batch_requests.observe(requests)

    async def _serve(self) -> None:
        assert self._wakeup is not None
        while True:
            while not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._wait_for_more()
            shares = self._take()
            if shares:
                await self._run_batch(shares)

    async def _wait_for_more(self) -> None:
        """Until a full batch is queued or the oldest pending request has waited max_wait."""
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while self._pending and self._queued_windows < self.max_batch_windows and not self._closing:
            # from the oldest request's arrival: windows that queued behind a run go at once
            left_s = self._pending[0].arrived + self.max_wait_s - loop.time()
            if left_s <= 0:
                return
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), left_s)

    def _take(self) -> list[_Share]:
        """Up to max_batch_windows queued windows, oldest first; a request may be cut."""
        capacity, shares = self.max_batch_windows, []
        while self._pending and capacity > 0:
            request = self._pending[0]
            count = min(request.remaining, capacity)
            shares.append(_Share(request, request.taken, request.taken + count))
            request.taken += count
            self._queued_windows -= count
            capacity -= count
            if request.remaining == 0:
                self._pending.popleft()
        return shares

    async def _run_batch(self, shares: list[_Share]) -> None:
        assert self._executor is not None
        self._in_flight = shares
        self._observe(windows=sum(s.stop - s.start for s in shares), requests=len(shares))
        try:
            windows = _concatenate([_rows(s.request.windows, s.start, s.stop) for s in shares])
            output = await asyncio.get_running_loop().run_in_executor(self._executor, self.runner.run, windows)
        except asyncio.CancelledError:
            self._fail([s.request for s in shares], _stopping())
            raise
        except Exception as exc:
            # exactly this run's requests fail (with their windows still queued); the next run is unaffected
            self._fail([s.request for s in shares], exc)
            return
        finally:
            self._in_flight = []
        offset = 0
        for share in shares:
            count = share.stop - share.start
            request = share.request
            if not request.future.done():  # not cancelled or failed meanwhile
                request.parts.append(_rows(output, offset, offset + count))
                if share.stop == request.windows.size:
                    request.future.set_result(_concatenate(request.parts))
            offset += count

    def _fail(self, requests: list[_Request], error: BaseException) -> None:
        for request in requests:
            self._drop(request)
            if not request.future.done():
                request.future.set_exception(error)

    def _drop(self, request: _Request) -> None:
        """Take a request's windows that no run has taken yet out of the queue."""
        if request.remaining and request in self._pending:
            self._pending.remove(request)
            self._queued_windows -= request.remaining
            request.taken = request.windows.size


def _rows(batch: Rows, start: int, stop: int) -> Rows:
    if start == 0 and stop == _length(batch):
        return batch  # the common whole-request case: no slicing, no copy
    return type(batch)(**{f.name: getattr(batch, f.name)[start:stop] for f in fields(batch)})


def _concatenate(parts: list[Rows]) -> Rows:
    if len(parts) == 1:
        return parts[0]
    return type(parts[0])(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(parts[0])})


def _length(batch: WindowBatch | FusionOutput) -> int:
    return int(getattr(batch, fields(batch)[0].name).shape[0])
