"""The worker pool with real spawned processes (no mocks): answers and errors crossing the
pipe, time limits, crashes (SIGKILL, SIGSEGV), the memory limit, cancellation, replacement
with retries, and shutdown without zombies or orphans.

Workers use the tiny initializer and jobs of tests/worker_jobs.py; only the last test warms
the service's real models, to prove they load under the default memory limit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from app.config import Settings
from app.errors import (
    CorruptMediaError,
    PreprocessingError,
    ProcessingTimeoutError,
    ResourceLimitError,
    WorkerCrashError,
)
from app.pipeline.extraction import InputLimits
from app.runtime import LITERT, RuntimeConfig, litert_available
from app.workers.extraction import DEFAULT_WORKER_MEMORY_LIMIT_BYTES, ExtractionPool
from app.workers.pool import ProcessPool, WorkerStartError
from tests import worker_jobs
from tests.conftest import MODEL_STORE, ROOT

MEMORY_LIMIT = 1 << 30  # far above a test worker's needs, far below what `allocate` asks for
T = TypeVar("T")


# -- helpers ---------------------------------------------------------------------------------


def _state(pid: int) -> str | None:
    """The process's state letter (Z: zombie), or None once it is gone (reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def _spawned_children() -> set[int]:
    """Our multiprocessing-spawned children (workers), zombies included."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        # a zombie has no command line left: count every zombie child as a leftover worker
        if int(ppid) == os.getpid() and (b"spawn_main" in cmdline or state == "Z"):
            found.add(int(entry.name))
    return found


class Runner:
    """One event loop for the whole module, so a pool outlives a single test."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __call__(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def wait_until(self, condition: Callable[[], bool], within_s: float, what: str) -> float:
        """Run the loop (background replacements progress) until ``condition``; seconds taken."""

        async def poll() -> float:
            started = time.monotonic()
            while not condition():
                assert time.monotonic() - started < within_s, f"not within {within_s} s: {what}"
                await asyncio.sleep(0.05)
            return time.monotonic() - started

        return self(poll())


# uvicorn runs on uvloop when it is installed: every pool test runs on both loops
@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def runner(request: pytest.FixtureRequest) -> Iterator[Runner]:
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        runner = Runner(uvloop.new_event_loop())
    else:
        runner = Runner(asyncio.new_event_loop())
    yield runner

    # as asyncio.run does: let what is left (reaping after close) finish before the loop goes
    async def drain() -> None:
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        if leftover:
            await asyncio.wait(leftover, timeout=10)

    runner(drain())
    runner.loop.close()


@pytest.fixture(scope="module")
def replacements(runner: Runner) -> list[str]:
    """The causes the shared pool reported through ``on_replace``, in order."""
    return []


@pytest.fixture(scope="module")
def pool(runner: Runner, replacements: list[str]) -> Iterator[ProcessPool]:
    pool = ProcessPool(
        2,
        worker_jobs.perform,
        worker_jobs.quick_init,
        memory_limit_bytes=MEMORY_LIMIT,
        retry_delay_s=0.2,
        on_replace=replacements.append,
    )
    runner(pool.start())
    yield pool
    runner(pool.aclose())


@pytest.fixture
def healthy_pool(runner: Runner, pool: ProcessPool) -> Iterator[ProcessPool]:
    """The shared pool, back at full strength after the test (a test may kill workers)."""
    assert pool.alive()
    yield pool
    runner.wait_until(pool.alive, 15, "the pool back at full strength")


@pytest.fixture
def worker_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # on the logger itself: the app's logging config may stop "app.*" propagating to the root
    logger = logging.getLogger("app.workers")
    logger.addHandler(caplog.handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)


def _perform(pool: ProcessPool, job: str, argument: Any = None, timeout_s: float = 20) -> Coroutine[Any, Any, Any]:
    return pool.run((job, argument), timeout_s)


# -- answers and errors ----------------------------------------------------------------------


def test_results_come_back_from_a_worker_process(runner: Runner, healthy_pool: ProcessPool) -> None:
    # megabytes both ways: more than a pipe buffer, so a message goes in several reads and writes
    value = {"bytes": os.urandom(8 << 20), "list": [1, 2.5, None], "text": "ok"}
    for _ in range(3):  # and again: a pipe the event loop watched must still take big messages
        assert runner(_perform(healthy_pool, "echo", value)) == value
    pid = runner(_perform(healthy_pool, "whoami"))
    assert pid != os.getpid() and pid in healthy_pool.pids()


def test_a_service_error_crosses_the_pipe_with_its_status_type_and_detail(
    runner: Runner, healthy_pool: ProcessPool
) -> None:
    with pytest.raises(CorruptMediaError) as raised:
        runner(_perform(healthy_pool, "raise_service_error", "the audio upload could not be decoded"))
    error = raised.value
    assert (error.status, error.type, error.detail) == (422, "corrupt-media", "the audio upload could not be decoded")
    assert healthy_pool.alive()


def test_an_unexpected_exception_becomes_a_500_naming_only_its_type(
    runner: Runner, healthy_pool: ProcessPool, worker_log: pytest.LogCaptureFixture
) -> None:
    pids = healthy_pool.pids()
    with pytest.raises(PreprocessingError) as raised:
        runner(_perform(healthy_pool, "raise_secret_value_error"))
    assert raised.value.status == 500 and "ValueError" in raised.value.detail
    assert worker_jobs.SECRET not in str(raised.value) and raised.value.__cause__ is None
    assert worker_jobs.SECRET not in worker_log.text and "ValueError" in worker_log.text
    assert healthy_pool.pids() == pids, "an ordinary exception must not cost a worker"


# -- time limit, crashes, memory -------------------------------------------------------------


def test_a_job_past_its_time_limit_gets_a_504_fast_its_worker_is_reaped_and_the_next_job_runs(
    runner: Runner, healthy_pool: ProcessPool
) -> None:
    pids = set(healthy_pool.pids())
    started = time.monotonic()
    with pytest.raises(ProcessingTimeoutError) as raised:
        runner(_perform(healthy_pool, "sleep", 60, timeout_s=0.5))
    assert time.monotonic() - started < 3
    assert raised.value.status == 504
    [killed] = pids - set(healthy_pool.pids())
    assert _state(killed) is None, "the timed-out worker is still there (running or a zombie)"
    assert runner(_perform(healthy_pool, "echo", "next")) == "next"
    runner.wait_until(healthy_pool.alive, 10, "a replacement for the timed-out worker")
    assert killed not in healthy_pool.pids()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSEGV], ids=["sigkill", "sigsegv"])
def test_a_worker_dying_mid_job_fails_that_job_with_worker_crashed_and_is_reaped_and_replaced(
    runner: Runner, healthy_pool: ProcessPool, signum: int, worker_log: pytest.LogCaptureFixture
) -> None:
    pids = set(healthy_pool.pids())
    with pytest.raises(WorkerCrashError) as raised:
        runner(_perform(healthy_pool, "kill_self", signum))
    assert (raised.value.status, raised.value.type) == (500, "worker-crashed")
    [crashed] = pids - set(healthy_pool.pids())
    assert _state(crashed) is None, "the crashed worker was not reaped"
    assert not healthy_pool.alive()  # until the replacement has warmed up
    assert runner(_perform(healthy_pool, "echo", "next")) == "next"
    runner.wait_until(healthy_pool.alive, 10, "a replacement for the crashed worker")
    assert crashed not in healthy_pool.pids() and len(healthy_pool.pids()) == 2
    assert signal.Signals(signum).name in worker_log.text


def test_a_crash_fails_only_its_own_request_not_one_running_on_another_worker(
    runner: Runner, healthy_pool: ProcessPool
) -> None:
    async def both() -> list[Any]:
        survivor = asyncio.ensure_future(_perform(healthy_pool, "sleep", 1.0))
        await asyncio.sleep(0.2)  # the sleep job holds one worker; the crash gets the other
        crash = _perform(healthy_pool, "kill_self", signal.SIGSEGV)
        return await asyncio.gather(survivor, crash, return_exceptions=True)

    survivor_pid, crash = runner(both())
    assert isinstance(crash, WorkerCrashError)
    assert isinstance(survivor_pid, int) and survivor_pid in healthy_pool.pids()


def test_env_defaults_reach_a_named_target_before_it_is_imported_and_the_parent_is_left_alone(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["PHQ_TEST_THREADS", "PHQ_TEST_OPERATOR"]
    monkeypatch.delenv(names[0], raising=False)
    monkeypatch.setenv(names[1], "set by the operator")
    pool = ProcessPool(
        1,
        "tests.worker_jobs:environment",
        "tests.worker_jobs:quick_init",
        env={names[0]: "1", names[1]: "the pool's default"},
        memory_limit_bytes=MEMORY_LIMIT,
    )
    runner(pool.start())
    try:
        seen = runner(pool.run(names, 30))
    finally:
        runner(pool.aclose())
    assert seen == {names[0]: "1", names[1]: "set by the operator"}
    assert names[0] not in os.environ


def test_two_workers_run_two_jobs_in_parallel(runner: Runner, healthy_pool: ProcessPool) -> None:
    async def two() -> list[int]:
        return await asyncio.gather(_perform(healthy_pool, "sleep", 1.0), _perform(healthy_pool, "sleep", 1.0))

    started = time.monotonic()
    pids = runner(two())
    assert time.monotonic() - started < 1.8, "the two jobs ran one after the other"
    assert len(set(pids)) == 2


def test_workers_run_under_the_configured_address_space_limit(runner: Runner, healthy_pool: ProcessPool) -> None:
    assert runner(_perform(healthy_pool, "address_space_limit")) == MEMORY_LIMIT


def test_an_allocation_past_the_memory_limit_gives_resource_limit_error_and_the_pool_keeps_working(
    runner: Runner, healthy_pool: ProcessPool
) -> None:
    with pytest.raises(ResourceLimitError) as raised:
        runner(_perform(healthy_pool, "allocate", 2 * MEMORY_LIMIT))
    assert (raised.value.status, raised.value.type) == (422, "resource-limit")
    assert runner(_perform(healthy_pool, "allocate", 1 << 20)) == 1 << 20
    runner.wait_until(healthy_pool.alive, 10, "the pool at full strength after the memory error")


# -- cancellation, deaths while idle, failed replacements ------------------------------------


def test_a_cancelled_request_has_its_worker_killed_reaped_and_replaced(
    runner: Runner, healthy_pool: ProcessPool
) -> None:
    async def cancel_midway() -> int:
        request = asyncio.ensure_future(_perform(healthy_pool, "sleep", 60))
        await asyncio.sleep(0.3)
        busy = set(healthy_pool.pids())
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        [abandoned] = busy - set(healthy_pool.pids())
        return abandoned

    pids = set(healthy_pool.pids())
    abandoned = runner(cancel_midway())
    assert abandoned in pids
    runner.wait_until(lambda: _state(abandoned) is None, 5, "the abandoned worker reaped")
    runner.wait_until(healthy_pool.alive, 10, "a replacement for the abandoned worker")
    assert runner(_perform(healthy_pool, "echo", "next")) == "next"


def test_an_idle_worker_killed_from_outside_is_reaped_and_replaced_without_a_request(
    runner: Runner, healthy_pool: ProcessPool
) -> None:
    victim = healthy_pool.pids()[0]
    os.kill(victim, signal.SIGKILL)
    runner.wait_until(lambda: _state(victim) is None, 5, "the killed idle worker reaped")
    runner.wait_until(healthy_pool.alive, 10, "a replacement for the killed idle worker")
    assert victim not in healthy_pool.pids()


def test_each_replacement_is_reported_to_on_replace_with_its_cause(
    runner: Runner, healthy_pool: ProcessPool, replacements: list[str]
) -> None:
    async def cancelled() -> None:
        request = asyncio.ensure_future(_perform(healthy_pool, "sleep", 60))
        await asyncio.sleep(0.3)
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)

    replacements.clear()
    with pytest.raises(ProcessingTimeoutError):
        runner(_perform(healthy_pool, "sleep", 60, timeout_s=0.3))
    with pytest.raises(WorkerCrashError):
        runner(_perform(healthy_pool, "kill_self", signal.SIGKILL))
    with pytest.raises(ResourceLimitError):
        runner(_perform(healthy_pool, "allocate", 2 * MEMORY_LIMIT))
    runner(cancelled())
    runner.wait_until(lambda: len(replacements) == 4, 5, "four replacements reported")
    assert sorted(replacements) == sorted(["timeout", "crash", "memory-limit", "cancelled"])
    # an ordinary error in the job costs no worker
    with pytest.raises(PreprocessingError):
        runner(_perform(healthy_pool, "raise_secret_value_error"))
    runner.wait_until(healthy_pool.alive, 10, "the pool back at full strength")
    assert len(replacements) == 4


def test_a_replacement_that_cannot_start_is_retried_until_it_can(runner: Runner, tmp_path: Path) -> None:
    block = tmp_path / "block"
    pool = ProcessPool(1, worker_jobs.perform, worker_jobs.init_unless_blocked, (str(block),), retry_delay_s=0.2)
    runner(pool.start())
    try:
        block.touch()  # from now on a new worker fails in its initializer
        with pytest.raises(WorkerCrashError):
            runner(_perform(pool, "kill_self", signal.SIGKILL))
        runner(asyncio.sleep(1.0))  # several failed attempts (0.2, 0.4 s backoff)
        assert not pool.alive() and pool.pids() == []
        assert not [pid for pid in _spawned_children() if _state(pid) == "Z"], "a failed attempt left a zombie"
        block.unlink()
        runner.wait_until(pool.alive, 10, "the replacement once it can start")
        assert runner(_perform(pool, "echo", "back")) == "back"
    finally:
        runner(pool.aclose())


def test_start_fails_with_worker_start_error_when_the_initializer_fails_and_leaves_no_process(
    runner: Runner, worker_log: pytest.LogCaptureFixture
) -> None:
    before = _spawned_children()
    pool = ProcessPool(2, worker_jobs.perform, worker_jobs.failing_init)
    with pytest.raises(WorkerStartError) as raised:
        runner(pool.start())
    assert "RuntimeError" in str(raised.value) and worker_jobs.SECRET not in str(raised.value)
    assert worker_jobs.SECRET not in worker_log.text
    assert _spawned_children() <= before


# -- shutdown --------------------------------------------------------------------------------


def test_close_stops_idle_and_busy_workers_and_leaves_no_child_process(runner: Runner) -> None:
    before = _spawned_children()
    pool = ProcessPool(2, worker_jobs.perform, worker_jobs.quick_init, stop_timeout_s=0.5)
    runner(pool.start())
    pids = pool.pids()
    assert set(pids) <= _spawned_children()

    async def close_while_busy() -> BaseException | None:
        busy = asyncio.ensure_future(_perform(pool, "sleep", 60))
        await asyncio.sleep(0.3)
        await pool.aclose()  # as the app does: in a thread
        results = await asyncio.gather(busy, return_exceptions=True)
        return results[0]

    started = time.monotonic()
    outcome = runner(close_while_busy())
    assert time.monotonic() - started < 5
    assert isinstance(outcome, WorkerCrashError)  # its worker was stopped under it
    assert all(_state(pid) is None for pid in pids), "a worker survived close() or was left a zombie"
    assert _spawned_children() <= before
    assert not pool.alive()


def test_workers_die_when_the_parent_process_is_killed(tmp_path: Path) -> None:
    # a parent killed with SIGKILL runs no cleanup: only PR_SET_PDEATHSIG can stop a busy worker
    script = textwrap.dedent(
        """
        import asyncio, sys
        from app.workers.pool import ProcessPool
        from tests import worker_jobs

        async def main():
            pool = ProcessPool(2, worker_jobs.perform, worker_jobs.quick_init)
            await pool.start()
            print(*pool.pids(), flush=True)
            await pool.run(("sleep", 60), 120)  # busy: it never reads its pipe

        asyncio.run(main())
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_state(pid) not in (None, "Z") for pid in pids)
        time.sleep(0.3)  # one worker is now busy sleeping
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    # orphans are reparented; whoever reaps them, they must not keep running
    while any(_state(pid) not in (None, "Z") for pid in pids):
        assert time.monotonic() < deadline, "a worker outlived its parent"
        time.sleep(0.05)


# -- the service's own pool ------------------------------------------------------------------


def test_service_pool_warms_the_real_models_and_extracts_under_the_default_memory_limit(
    runner: Runner, fusion_manifest
) -> None:
    # the one test with the real initializer (text encoder, face models, numba): it proves the
    # default address-space limit leaves room for ONNX Runtime and numba; a few seconds
    from app.pipeline.extraction import ExtractionJob

    settings = Settings(providers=["cpu"])
    pool = ExtractionPool(1, MODEL_STORE, fusion_manifest.features, RuntimeConfig.for_workers(settings))
    assert pool.memory_limit_bytes == DEFAULT_WORKER_MEMORY_LIMIT_BYTES
    runner(pool.start())
    try:
        text = (
            "I have been feeling pretty down over the last couple of weeks. Most nights I lie awake and "
            "I cannot get back to sleep. Work has been hard because I keep losing focus in meetings."
        )
        job = ExtractionJob(
            features=fusion_manifest.features, limits=InputLimits.from_settings(settings), transcript=text.encode()
        )
        extracted = runner(pool.run(job, 120))
        assert extracted.reports["text"].used
        # the warm-up reports the providers its sessions really run on (CPU here: no GPU build)
        providers = pool.session_providers()
        assert set(providers) == {
            "text_encoder", "face_detector", "face_landmarks", "iris_landmarks", "voice_encoder", "speech_to_text"
        }
        # the face models in LiteRT when it is installed (auto on a CPU host), the rest in ONNX Runtime
        face = {"face_detector", "face_landmarks", "iris_landmarks"}
        face_provider = LITERT if litert_available() else "CPUExecutionProvider"
        for name, used in providers.items():
            assert used[-1] == (face_provider if name in face else "CPUExecutionProvider"), name
        assert pool.warm_info() == [
            {
                "text_encoder": providers["text_encoder"],
                "face_models": providers["face_landmarks"],
                "voice_encoder": providers["voice_encoder"],
                "speech_to_text": providers["speech_to_text"],
            }
        ]
    finally:
        runner(pool.aclose())
