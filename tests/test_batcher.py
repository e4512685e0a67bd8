"""The fusion micro-batcher with the shipped model in ONNX Runtime: shared runs, same rows."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import numpy as np
import pytest

from app.config import Settings
from app.errors import OverloadedError
from app.fusion.batcher import FusionBatcher
from app.fusion.runner import FusionOutput, FusionRunner
from app.metrics import Metrics
from app.model_store import FusionModel, load_fusion
from app.runtime import RuntimeConfig
from app.windows import AudioTrack, VisualTrack, WindowBatch, build_windows
from tests.conftest import FUSION_VERSION, MODEL_STORE

T = TypeVar("T")
SETTINGS = RuntimeConfig.for_fusion(Settings(providers=["cpu"], intra_op_threads=1))
# one of them larger than the max batch of the shared-run tests (16)
SIZES = (1, 3, 40, 7, 16, 2, 25, 1, 5)


@pytest.fixture(scope="module")
def model() -> FusionModel:
    return load_fusion(MODEL_STORE, FUSION_VERSION)


@pytest.fixture(scope="module")
def runner(model: FusionModel) -> FusionRunner:
    return FusionRunner(model, SETTINGS)


# uvicorn serves on uvloop when it is installed: the batcher must work on both loops
@pytest.fixture(params=["asyncio", "uvloop"])
def run_async(request: pytest.FixtureRequest) -> Iterator[Callable[[Coroutine[Any, Any, T]], T]]:
    factory = asyncio.new_event_loop
    if request.param == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop
    with asyncio.Runner(loop_factory=factory) as loop_runner:
        # a request the batcher lost would wait forever: fail instead
        yield lambda scenario: loop_runner.run(asyncio.wait_for(scenario, timeout=30))


def random_windows(model: FusionModel, count: int, seed: int) -> WindowBatch:
    """``count`` windows of random features with the manifest's shapes and random masks."""
    rng = np.random.default_rng(seed)
    features = model.manifest.features

    def size(dim: int | str) -> int:  # manifest dims: "batch", "t_<modality>" or a number
        if dim == "batch":
            return count
        return features.frames_per_window(dim.removeprefix("t_")) if isinstance(dim, str) else dim

    arrays = {}
    for spec in model.manifest.inputs:
        arrays[spec.name] = rng.standard_normal([size(dim) for dim in spec.shape]).astype(np.float32)
    for name in ("visual_mask", "audio_mask", "text_mask", "modality_mask"):
        arrays[name] = (rng.random(arrays[name].shape) > 0.3).astype(np.float32)
    arrays["modality_mask"][:, 1] = 1.0  # at least one modality present in every window
    arrays["quality"] = rng.random(arrays["quality"].shape).astype(np.float32)
    starts = np.arange(count, dtype=np.float32) * 50
    return WindowBatch(**arrays, start_s=starts, end_s=starts + 60, coverage=np.ones(count, np.float32))


def track_windows(model: FusionModel, seconds: float) -> WindowBatch:
    """Windows cut by ``build_windows`` from synthetic audio and face tracks."""
    features = model.manifest.features
    rng = np.random.default_rng(7)
    n_audio, n_video = round(seconds * features.audio.rate_hz), round(seconds * features.visual.rate_hz)
    audio = AudioTrack(
        frames=rng.standard_normal((n_audio, features.audio.dim)).astype(np.float32),
        speech=rng.random(n_audio) > 0.4,
        snr_db=18.0,
    )
    visual = VisualTrack(
        frames=rng.standard_normal((n_video, features.visual.dim)).astype(np.float32),
        valid=rng.random(n_video) > 0.1,
        confidence=np.full(n_video, 0.9, np.float32),
    )
    return build_windows(features, visual=visual, audio=audio)


def assert_same_output(got: FusionOutput, expected: FusionOutput) -> None:
    for name in ("item_probs", "item_scores", "modality_weights"):
        actual, wanted = getattr(got, name), getattr(expected, name)
        assert actual.shape == wanted.shape, name
        np.testing.assert_allclose(actual, wanted, rtol=0, atol=1e-4, err_msg=name)


def sample(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


class FailingRunner(FusionRunner):
    """The real runner, except that the session runs numbered in ``fail_on`` raise (a test double of a failure)."""

    def __init__(self, model: FusionModel, fail_on: set[int]) -> None:
        super().__init__(model, SETTINGS)
        self.fail_on = fail_on
        self.calls = 0

    def run(self, windows: WindowBatch) -> FusionOutput:
        self.calls += 1
        if self.calls in self.fail_on:
            raise RuntimeError(f"injected failure of run {self.calls}")
        return super().run(windows)


class StuckRunner(FusionRunner):
    """A runner whose session run does not come back until released (a hung run)."""

    def __init__(self, model: FusionModel) -> None:
        super().__init__(model, SETTINGS)
        self.release = threading.Event()
        self.entered = threading.Event()

    def run(self, windows: WindowBatch) -> FusionOutput:
        self.entered.set()
        self.release.wait(timeout=30)
        return super().run(windows)


def test_concurrent_requests_share_runs_and_get_their_own_rows(
    run_async: Callable, model: FusionModel, runner: FusionRunner
) -> None:
    requests = [random_windows(model, size, seed) for seed, size in enumerate(SIZES)] + [track_windows(model, 610)]
    expected = [runner.run(windows) for windows in requests]  # each batch alone
    metrics = Metrics()
    batcher = FusionBatcher(runner, metrics, max_batch_windows=16, max_wait_ms=20)

    async def scenario() -> list[FusionOutput]:
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.run(windows) for windows in requests))
        finally:
            await batcher.stop()

    outputs = run_async(scenario())
    for got, wanted in zip(outputs, expected, strict=True):
        assert_same_output(got, wanted)
    total = sum(windows.size for windows in requests)
    # full runs of 16 except the last: concurrent requests really shared session runs
    assert batcher.session_runs == -(-total // 16) < len(requests)
    assert sample(metrics, "phq_fusion_batch_windows_count") == batcher.session_runs
    assert sample(metrics, "phq_fusion_batch_windows_sum") == total
    at_most_16 = metrics.registry.get_sample_value("phq_fusion_batch_windows_bucket", {"le": "16.0"})
    assert at_most_16 == batcher.session_runs  # no run above the max batch
    # a request cut across runs counts once per run it is in
    assert sample(metrics, "phq_fusion_batch_requests_sum") > len(requests)


@pytest.mark.parametrize(("max_batch_windows", "max_wait_ms"), [(32, 0.0), (1, 50.0)])
def test_without_batching_each_request_runs_alone_and_whole(
    run_async: Callable, model: FusionModel, runner: FusionRunner, max_batch_windows: int, max_wait_ms: float
) -> None:
    requests = [random_windows(model, size, 100 + seed) for seed, size in enumerate((1, 4, 2, 40, 3))]
    metrics = Metrics()
    batcher = FusionBatcher(runner, metrics, max_batch_windows=max_batch_windows, max_wait_ms=max_wait_ms)
    assert not batcher.batching

    async def scenario() -> list[FusionOutput]:
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.run(windows) for windows in requests))
        finally:
            await batcher.stop()

    for got, windows in zip(run_async(scenario()), requests, strict=True):
        assert_same_output(got, runner.run(windows))
    assert batcher.session_runs == len(requests)
    assert sample(metrics, "phq_fusion_batch_requests_sum") == len(requests)  # one request per run
    assert sample(metrics, "phq_fusion_batch_windows_sum") == sum(windows.size for windows in requests)


def test_a_failed_run_fails_exactly_its_requests_and_the_next_run_works(
    run_async: Callable, model: FusionModel, runner: FusionRunner
) -> None:
    failing = FailingRunner(model, fail_on={1, 4})
    batcher = FusionBatcher(failing, Metrics(), max_batch_windows=7, max_wait_ms=20)
    first, second, third = (random_windows(model, size, 200 + size) for size in (3, 4, 2))
    long, short, later = (random_windows(model, size, 300 + size) for size in (20, 2, 5))

    async def scenario() -> tuple[list, list, FusionOutput]:
        await batcher.start()
        try:
            # run 1 = first + second (7 windows, a full batch) fails; run 2 = third
            one = await asyncio.gather(*(batcher.run(w) for w in (first, second, third)), return_exceptions=True)
            # runs 3 and 4 = long[0:7], long[7:14]; run 4 fails, so long's last 6 windows never run; run 5 = short
            two = await asyncio.gather(batcher.run(long), batcher.run(short), return_exceptions=True)
            return one, two, await batcher.run(later)
        finally:
            await batcher.stop()

    (got_first, got_second, got_third), (got_long, got_short), got_later = run_async(scenario())
    for failed in (got_first, got_second, got_long):
        assert isinstance(failed, RuntimeError) and "injected" in str(failed)
    assert "run 1" in str(got_first) and "run 4" in str(got_long)
    assert_same_output(got_third, runner.run(third))
    assert_same_output(got_short, runner.run(short))
    assert_same_output(got_later, runner.run(later))
    assert failing.calls == 6  # the failed request's leftover windows were not run


def test_stop_finishes_queued_requests_then_refuses_new_ones(
    run_async: Callable, model: FusionModel, runner: FusionRunner
) -> None:
    requests = [random_windows(model, size, 400 + size) for size in (1, 2, 3)]
    batcher = FusionBatcher(runner, Metrics(), max_batch_windows=64, max_wait_ms=60_000)  # never full, never due

    async def scenario() -> tuple[list[FusionOutput], float]:
        await batcher.start()
        tasks = [asyncio.ensure_future(batcher.run(windows)) for windows in requests]
        await asyncio.sleep(0.05)
        assert batcher.session_runs == 0 and not any(task.done() for task in tasks)  # all still queued
        started = time.monotonic()
        await asyncio.wait_for(batcher.stop(), timeout=5)
        elapsed = time.monotonic() - started
        with pytest.raises(OverloadedError):
            await batcher.run(requests[0])
        return [task.result() for task in tasks], elapsed

    outputs, elapsed = run_async(scenario())
    assert elapsed < 2
    assert batcher.session_runs == 1
    for got, windows in zip(outputs, requests, strict=True):
        assert_same_output(got, runner.run(windows))


def test_stop_does_not_hang_on_a_stuck_run(run_async: Callable, model: FusionModel) -> None:
    stuck = StuckRunner(model)
    batcher = FusionBatcher(stuck, Metrics(), max_batch_windows=2, max_wait_ms=1, stop_timeout_s=0.2)

    async def scenario() -> tuple[list[BaseException | FusionOutput], float]:
        await batcher.start()
        in_run = asyncio.ensure_future(batcher.run(random_windows(model, 2, 500)))
        queued = asyncio.ensure_future(batcher.run(random_windows(model, 1, 501)))
        while not stuck.entered.is_set():
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await asyncio.wait_for(batcher.stop(), timeout=5)
        elapsed = time.monotonic() - started
        return list(await asyncio.gather(in_run, queued, return_exceptions=True)), elapsed

    try:
        results, elapsed = run_async(scenario())
    finally:
        stuck.release.set()  # let the session thread end
    assert elapsed < 2
    assert all(isinstance(result, OverloadedError) for result in results), results


def test_a_cancelled_request_leaves_the_others_alone(
    run_async: Callable, model: FusionModel, runner: FusionRunner
) -> None:
    requests = [random_windows(model, size, 600 + size) for size in (2, 5, 3)]
    metrics = Metrics()
    batcher = FusionBatcher(runner, metrics, max_batch_windows=16, max_wait_ms=50)

    async def scenario() -> list[FusionOutput]:
        await batcher.start()
        try:
            tasks = [asyncio.ensure_future(batcher.run(windows)) for windows in requests]
            await asyncio.sleep(0.005)  # all queued, the wait not over
            tasks[1].cancel()
            return [await tasks[0], await tasks[2]]
        finally:
            await batcher.stop()

    kept = [requests[0], requests[2]]
    for got, windows in zip(run_async(scenario()), kept, strict=True):
        assert_same_output(got, runner.run(windows))
    assert batcher.session_runs == 1
    assert sample(metrics, "phq_fusion_batch_windows_sum") == sum(windows.size for windows in kept)
