"""A generic process pool for CPU-bound jobs: they run in child processes, never on the event loop.

Each worker is a spawned interpreter with its own duplex pipe. The parent hands one job to
one idle worker and waits for the answer without blocking the event loop. A worker past the
request's time limit is killed; a worker that dies (even from a segfault in a decoder) fails
only the request it was running. Either way it is reaped and a fresh one takes its slot in
the background, so the pool always heads back to its full size.

Logs name workers by slot and pid only: never job content, exception messages or paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import logging
import multiprocessing
import os
import pickle
import resource
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from typing import Any, Generic, TypeVar

from app.errors import (
    PreprocessingError,
    ProcessingTimeoutError,
    ResourceLimitError,
    ServiceError,
    WorkerCrashError,
)

log = logging.getLogger("app.workers")

JobT = TypeVar("JobT")
ResultT = TypeVar("ResultT")

# a cold numba cache compiles librosa's kernels on the first start: allow for it
DEFAULT_START_TIMEOUT_S = 300.0
DEFAULT_STOP_TIMEOUT_S = 5.0
MAX_RETRY_DELAY_S = 60.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class WorkerStartError(RuntimeError):
    """A worker could not start or warm up (raised by ``start``; replacements retry instead)."""


# -- the child side --------------------------------------------------------------------------


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this worker when the parent dies, even mid-job (Linux only;
    elsewhere the worker still exits on EOF from the parent's end once its job is done)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _limit_memory(limit_bytes: int) -> None:
    # RLIMIT_AS: an allocation past it fails (MemoryError in Python) instead of the OOM killer
    # picking a process; the hard limit stays, so this never raises what an admin set
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = limit_bytes if hard == resource.RLIM_INFINITY else min(limit_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _portable(error: ServiceError) -> tuple[str, Any]:
    """The error as it crosses the pipe, or a type-name-only failure if it cannot."""
    try:
        copy = pickle.loads(pickle.dumps(error))
    except Exception:
        return ("failed", type(error).__name__)
    if type(copy) is not type(error) or copy.detail != error.detail:
        return ("failed", type(error).__name__)
    return ("service-error", error)


def _outcome(target: Callable[[Any], Any], job: Any) -> tuple[str, Any]:
    try:
        return ("ok", target(job))
    except ServiceError as error:
        return _portable(error)
    except MemoryError:
        return ("memory", None)
    except Exception as error:
        # only the type: the message may quote user content
        return ("failed", type(error).__name__)


def _encode(message: tuple[str, Any]) -> memoryview:
    try:
        return ForkingPickler.dumps(message)
    except MemoryError:
        return ForkingPickler.dumps(("memory", None))
    except Exception as error:  # e.g. a result that cannot be pickled
        return ForkingPickler.dumps(("failed", type(error).__name__))


# a module-level function, or its "package.module:name" (imported in the worker, after its
# environment is set: e.g. thread counts that numpy reads once, when it is first imported)
Function = Callable[..., Any] | str


def _resolve(function: Function) -> Callable[..., Any]:
    if callable(function):
        return function
    module, _, name = function.partition(":")
    return getattr(importlib.import_module(module), name)


def _worker_main(
    conn: Connection,
    parent_pid: int,
    target: Function,
    initializer: Function | None,
    initargs: Sequence[Any],
    memory_limit_bytes: int,
    env: Mapping[str, str],
) -> None:
    """A worker's life: environment, limit, warm up, say ready (with what the initializer
    returned), then one job at a time until told to stop."""
    # Ctrl-C reaches the whole process group: the parent decides when workers stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    for name, value in env.items():
        os.environ.setdefault(name, value)  # what the operator set wins
    if memory_limit_bytes > 0:
        _limit_memory(memory_limit_bytes)
    try:
        run = _resolve(target)
        warm_info = _resolve(initializer)(*initargs) if initializer is not None else None
    except BaseException as error:
        with contextlib.suppress(OSError):
            conn.send(("init-failed", type(error).__name__))
        raise SystemExit(1) from None
    try:
        conn.send(("ready", warm_info))
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone or closed our pipe
            except MemoryError:  # the job was read whole but does not fit once unpickled
                conn.send_bytes(_encode(("memory", None)))
                continue
            except Exception as error:
                conn.send_bytes(_encode(("failed", type(error).__name__)))
                continue
            if job is None:
                return  # asked to stop
            conn.send_bytes(_encode(_outcome(run, job)))
            del job
    except OSError:
        return  # the parent went away while we answered


# -- the parent side -------------------------------------------------------------------------


class _WorkerLost(Exception):
    """The worker's pipe broke or the process ended: it cannot answer."""


@dataclass(eq=False)
class _Worker:
    slot: int
    process: BaseProcess
    conn: Connection
    # a thread still reading an answer from ``conn``: the pipe is closed only after it returns
    reading: asyncio.Future | None = None
    lost: bool = False  # died while idle; its queue entry is skipped
    warm_info: Any = None  # what the initializer returned (e.g. the providers its sessions run on)

    @property
    def pid(self) -> int:
        return self.process.pid or -1

    def end(self) -> str:
        code = self.process.exitcode
        if code is None:
            return "still running"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"signal {signal.Signals(-code).name}"
        return f"exit code {code}"


class ProcessPool(Generic[JobT, ResultT]):
    """``size`` spawned worker processes running ``target(job)``, one job per worker at a time.

    ``target`` and ``initializer`` must be module-level functions (spawn pickles them by name)
    or their "package.module:name"; ``env`` holds defaults for each worker's environment (what
    the operator set wins), applied before those are imported.
    ``initializer(*initargs)`` runs once in each worker, after the memory limit is set and
    before the worker is handed out. ``memory_limit_bytes`` caps each worker's address space
    (RLIMIT_AS; 0: no limit). ``on_replace(cause)`` is told each time a worker is retired for
    replacement, cause one of "timeout", "crash", "memory-limit", "cancelled".

    Start it with ``await start()`` and use it from that event loop; ``close()`` is safe from
    any thread. Workers are started from the event loop's thread: on Linux they die with the
    thread that started them (PR_SET_PDEATHSIG), which must therefore live as long as the pool.
    """

    def __init__(
        self,
        size: int,
        target: Callable[[JobT], ResultT] | str,
        initializer: Function | None = None,
        initargs: Sequence[Any] = (),
        *,
        env: Mapping[str, str] | None = None,
        memory_limit_bytes: int = 0,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
        retry_delay_s: float = 1.0,
        on_replace: Callable[[str], None] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        if memory_limit_bytes < 0:
            raise ValueError("memory_limit_bytes must be 0 (no limit) or positive")
        self.size = size
        self.target = target
        self.initializer = initializer
        self.initargs = tuple(initargs)
        self.env = dict(env or {})
        self.memory_limit_bytes = memory_limit_bytes
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.retry_delay_s = retry_delay_s
        self.on_replace = on_replace
        self._context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads or locks
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._ready: dict[int, _Worker] = {}  # slot -> a warm worker, idle or busy
        self._processes: set[_Worker] = set()  # every started and not yet reaped worker
        self._tasks: set[asyncio.Future] = set()  # reaping and replacing in the background
        self._replacements: set[asyncio.Future] = set()  # the part close() cancels
        # guards _closed, _processes and every write to a worker's pipe: close() may run in another thread
        self._lock = threading.Lock()
        self._closed = False
        self._started = False

    # -- public ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker and wait until each has warmed up; raise WorkerStartError (and
        leave no process behind) when one cannot."""
        if self._started:
            raise RuntimeError("the pool was already started")
        self._loop = asyncio.get_running_loop()
        self._started = True
        launches = [asyncio.ensure_future(self._launch(slot)) for slot in range(self.size)]
        results = await asyncio.gather(*launches, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await asyncio.to_thread(self.close)
            for worker in results:
                if isinstance(worker, _Worker):
                    worker.conn.close()
            raise failures[0]
        for worker in results:
            self._ready[worker.slot] = worker
            self._release(worker)
        log.info(
            "started %d workers (memory limit %s)",
            self.size,
            _gib(self.memory_limit_bytes) if self.memory_limit_bytes else "none",
        )

    async def run(self, job: JobT, timeout_s: float) -> ResultT:
        """``target(job)`` in a worker, within ``timeout_s`` (waiting for a free worker included).

        Raises the target's ServiceError as it was raised, ResourceLimitError when the worker
        ran out of memory, PreprocessingError for any other exception in the target,
        ProcessingTimeoutError past the time limit and WorkerCrashError when the worker died.
        """
        if self._closed or not self._started:
            raise RuntimeError("the worker pool is not running")
        payload = ForkingPickler.dumps(job)  # an unpicklable job fails here, before taking a worker
        worker: _Worker | None = None
        try:
            async with asyncio.timeout(timeout_s):
                worker = await self._dispatch(payload)
                kind, value = await self._answer(worker)
        except TimeoutError:
            if worker is not None:
                # killed and reaped before the caller hears of it; shielded: a cancelled
                # caller must not leave it half done
                await asyncio.shield(self._retire_soon(worker, "timeout", f"timed out after {timeout_s:g} s"))
            raise ProcessingTimeoutError(f"preprocessing took longer than {timeout_s:.0f} s") from None
        except _WorkerLost:
            assert worker is not None
            await asyncio.shield(self._retire_soon(worker, "crash", "died during a job"))
            raise WorkerCrashError("a preprocessing worker crashed while handling this request") from None
        except asyncio.CancelledError:
            if worker is not None:
                # the client is gone: stop spending CPU on it now (see _abandon)
                self._abandon(worker)
            raise
        if kind == "memory":
            # a worker that hit its address-space limit may hold native libraries in a bad state:
            # it is idle now, so it is asked to stop and replaced in the background
            self._retire_soon(worker, "memory-limit", "ran out of memory", graceful=True)
            limit = f" ({_gib(self.memory_limit_bytes)})" if self.memory_limit_bytes else ""
            raise ResourceLimitError(f"preprocessing this input needs more memory than a worker may use{limit}")
        self._release(worker)
        if kind == "ok":
            return value
        if kind == "service-error":
            raise value
        log.error("worker %d: job failed with %s", worker.slot, value)
        raise PreprocessingError(f"preprocessing failed with an unexpected {value}")

    def alive(self) -> bool:
        """Whether all ``size`` workers are running and warm (false while one is replaced)."""
        if self._closed or not self._started or len(self._ready) != self.size:
            return False
        return all(worker.process.is_alive() for worker in list(self._ready.values()))

    def pids(self) -> list[int]:
        """Process ids of the warm workers, by slot."""
        return [worker.pid for _, worker in sorted(self._ready.items())]

    def warm_info(self) -> list[Any]:
        """What each warm worker's initializer returned, by slot."""
        return [worker.warm_info for _, worker in sorted(self._ready.items())]

    def close(self) -> None:
        """Stop every worker: ask (a stop message), then SIGTERM, then SIGKILL after
        ``stop_timeout_s``; join all of them. Safe from any thread, and to call twice."""
        with self._lock:
            self._closed = True
            workers = list(self._processes)
            for worker in workers:
                # a busy worker reads this after its job; skip a pipe that is full or broken
                with contextlib.suppress(OSError, ValueError):
                    if select.select([], [worker.conn], [], 0)[1]:
                        worker.conn.send(None)
        deadline = time.monotonic() + self.stop_timeout_s
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        stubborn = [worker for worker in workers if worker.process.is_alive()]
        for worker in stubborn:
            worker.process.terminate()
            worker.process.join(1.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        with self._lock:
            self._processes.difference_update(workers)
        self._ready.clear()
        self._cancel_replacements()
        if workers:
            log.info("stopped %d workers (%d did not stop when asked)", len(workers), len(stubborn))

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    # -- dispatch and answers -------------------------------------------------------------

    async def _acquire(self) -> _Worker:
        loop = asyncio.get_running_loop()
        while True:
            worker = await self._idle.get()
            _unwatch(loop, worker.process.sentinel)
            if worker.lost:
                continue  # already being replaced
            if not worker.process.is_alive():
                self._retire_soon(worker, "crash", "died while idle")
                continue
            return worker

    async def _dispatch(self, payload: memoryview) -> _Worker:
        """An idle worker that has taken the job; a worker found dead at hand-over is replaced
        and the job (not started) goes to the next one."""
        for _ in range(self.size + 1):
            worker = await self._acquire()
            try:
                with self._lock:
                    if self._closed:
                        raise RuntimeError("the worker pool is closed")
                    worker.conn.send_bytes(payload)
            except OSError:
                self._retire_soon(worker, "crash", "died while idle")
                continue
            return worker
        raise WorkerCrashError("no preprocessing worker could take this request")

    async def _answer(self, worker: _Worker) -> tuple[str, Any]:
        await _readable(worker.conn.fileno(), worker.process.sentinel)
        if not worker.conn.poll(0):
            raise _WorkerLost  # the process ended without a word
        # read in a thread: a large result must not stall the event loop while it streams in
        # shielded: when this request is cancelled or times out, the read carries on (it ends as
        # soon as the worker is killed) and _retire waits for it before closing the pipe
        worker.reading = asyncio.get_running_loop().run_in_executor(None, worker.conn.recv)
        try:
            message = await asyncio.shield(worker.reading)
        except (EOFError, OSError) as error:
            raise _WorkerLost from error
        except Exception as error:
            # the answer arrived whole but cannot be rebuilt here: the worker is fine
            worker.reading = None
            log.error("worker %d: its answer could not be read (%s)", worker.slot, type(error).__name__)
            return ("failed", type(error).__name__)
        worker.reading = None
        return message

    def _release(self, worker: _Worker) -> None:
        """Back to the idle queue, watched: an idle worker that dies is replaced at once."""
        if self._closed:
            self._retire_soon(worker, None, "closed")
            return
        assert self._loop is not None
        _watch(self._loop, worker.process.sentinel, self._idle_worker_died, worker)
        self._idle.put_nowait(worker)

    def _idle_worker_died(self, worker: _Worker) -> None:
        assert self._loop is not None
        _unwatch(self._loop, worker.process.sentinel)
        worker.lost = True
        if self._closed:
            with self._lock:  # it obeyed close(), which reaps it: nothing to replace
                worker.conn.close()
            return
        self._retire_soon(worker, "crash", "died while idle")

    # -- retiring and replacing -----------------------------------------------------------

    async def _retire(self, worker: _Worker, cause: str | None, reason: str, *, graceful: bool = False) -> None:
        """Stop and reap ``worker`` (no zombie), then start its replacement in the background."""
        if self._ready.get(worker.slot) is worker:
            del self._ready[worker.slot]
        if graceful:
            with self._lock, contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
            await asyncio.to_thread(worker.process.join, self.stop_timeout_s)
        if worker.process.is_alive():
            worker.process.kill()
        await asyncio.to_thread(worker.process.join)
        if worker.reading is not None:  # it returns at once: the pipe's far end is gone
            with contextlib.suppress(Exception):
                await worker.reading
        with self._lock:  # close() may be writing to this pipe from another thread
            worker.conn.close()
            self._processes.discard(worker)
        if self._closed or cause is None:
            return
        log.warning("worker %d (pid %d) %s (%s); replacing it", worker.slot, worker.pid, reason, worker.end())
        if self.on_replace is not None:
            try:
                self.on_replace(cause)
            except Exception:
                log.exception("the on_replace callback failed")
        replacement = self._background(self._replace(worker.slot))
        self._replacements.add(replacement)
        replacement.add_done_callback(self._replacements.discard)

    def _retire_soon(
        self, worker: _Worker, cause: str | None, reason: str, *, graceful: bool = False
    ) -> asyncio.Future[None]:
        """``_retire`` as a task of its own, so that no cancellation can stop it halfway."""
        if self._ready.get(worker.slot) is worker:
            del self._ready[worker.slot]  # at once: alive() must not count it
        return self._background(self._retire(worker, cause, reason, graceful=graceful))

    def _abandon(self, worker: _Worker) -> None:
        """The request waiting on ``worker`` was cancelled. Kill and replace rather than let the
        job finish: nobody wants its answer, it may run for minutes on scarce CPU, and a fresh
        worker can never deliver a stale answer to the next request."""
        with contextlib.suppress(OSError):
            worker.process.kill()
        self._retire_soon(worker, "cancelled", "abandoned by a cancelled request")

    async def _replace(self, slot: int) -> None:
        delay = self.retry_delay_s
        while not self._closed:
            try:
                worker = await self._launch(slot)
            except Exception as error:
                why = str(error) if isinstance(error, WorkerStartError) else type(error).__name__
                log.error("worker %d could not be replaced (%s); retrying in %g s", slot, why, delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, MAX_RETRY_DELAY_S)
                continue
            if self._closed:
                self._retire_soon(worker, None, "closed")
                return
            self._ready[slot] = worker
            self._release(worker)
            log.info("worker %d replaced (pid %d)", slot, worker.pid)
            return

    async def _launch(self, slot: int) -> _Worker:
        """A started, warm worker in ``slot`` (not yet handed out), or WorkerStartError."""
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(
                child_end,
                os.getpid(),
                self.target,
                self.initializer,
                self.initargs,
                self.memory_limit_bytes,
                self.env,
            ),
            name=f"app.workers-{slot}",
            daemon=True,  # multiprocessing's exit handler stops it if close() is never called
        )
        worker = _Worker(slot, process, parent_end)
        with self._lock:
            if self._closed:
                parent_end.close()
                child_end.close()
                raise WorkerStartError("the pool is closed")
            try:
                process.start()
            except Exception as error:  # e.g. no memory or process slots left to fork
                parent_end.close()
                raise WorkerStartError(f"worker {slot} could not be spawned ({type(error).__name__})") from None
            finally:
                child_end.close()  # else the parent holds the worker's end open and never sees EOF
            self._processes.add(worker)
        try:
            async with asyncio.timeout(self.start_timeout_s):
                await _readable(parent_end.fileno(), process.sentinel)
            kind, detail = parent_end.recv() if parent_end.poll(0) else ("exited", None)
        except (TimeoutError, EOFError, OSError) as error:
            kind, detail = "no answer", type(error).__name__
        except BaseException:
            self._retire_soon(worker, None, "start cancelled")
            raise
        if kind == "ready":
            worker.warm_info = detail
            return worker
        await asyncio.shield(self._retire_soon(worker, None, "failed to start"))
        why = f"{kind}: {detail}" if detail else kind
        if kind == "init-failed" and detail == "MemoryError" and self.memory_limit_bytes:
            why += f"; is the memory limit ({_gib(self.memory_limit_bytes)}) too low?"
        raise WorkerStartError(f"worker {slot} did not start ({why}, {worker.end()})")

    def _background(self, coroutine: Any) -> asyncio.Future[None]:
        task = asyncio.ensure_future(coroutine, loop=self._loop)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _cancel_replacements(self) -> None:
        # only these: reaping tasks finish by themselves, and a request may be awaiting one
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        for task in list(self._replacements):
            if on_loop:
                task.cancel()
            else:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(task.cancel)


async def _readable(*fds: int) -> None:
    """Wait, without blocking the event loop, until any of ``fds`` can be read (or is at EOF)."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    for fd in fds:
        _watch(loop, fd, wake)
    try:
        await ready
    finally:
        for fd in fds:
            _unwatch(loop, fd)


def _watch(loop: asyncio.AbstractEventLoop, fd: int, callback: Callable[..., None], *args: Any) -> None:
    loop.add_reader(fd, callback, *args)


def _unwatch(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    loop.remove_reader(fd)
    # uvloop (libuv) makes a watched fd non-blocking and leaves it so; Connection's recv and
    # send expect a blocking pipe (else a large message fails half way with EAGAIN)
    with contextlib.suppress(OSError):
        os.set_blocking(fd, True)


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / (1 << 30):.1f} GiB"
