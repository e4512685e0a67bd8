"""The composition root: load and check the model store, build every service, warm them, and
stop them in order. The one place that knows which concrete class backs each part.

``running_services(settings, metrics)`` is what the app's lifespan enters; a test hands it
its own ``workers`` (e.g. ``InProcessExtractor``) to run the real pipeline without processes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import numpy as np

from app import redis_store
from app.admission import Admission, ClientRateLimit, RateLimiter
from app.config import Settings
from app.contract import FeatureSpec
from app.features.audio import audio_features
from app.features.text import TextEncoder
from app.features.visual import space as visual_space
from app.features.visual.models import FaceModelError, FaceModels
from app.fusion.batcher import FusionBatcher
from app.fusion.runner import FusionRunner
from app.job_store import InMemoryJobStore, JobStore
from app.jobs import JobManager
from app.metrics import Metrics
from app.model_store import FusionModel, ModelStoreError, load_fusion, text_encoder_dir
from app.pipeline.service import Pipeline
from app.runtime import RuntimeConfig
from app.services import Services, Workers
from app.upload import sweep_stale_folders
from app.workers.extraction import ExtractionPool

log = logging.getLogger("app")


def check_contract(features: FeatureSpec, store: Path) -> None:
    """Run the serve-time extractors once on generated input and compare with the manifest.

    Raises ModelStoreError naming the manifest field the extractors cannot meet.
    """
    # audio: one second of a tone through the real log-mel path
    t = np.arange(features.audio.sample_rate, dtype=np.float32) / features.audio.sample_rate
    produced = audio_features(0.1 * np.sin(2 * np.pi * 220.0 * t), features.audio)
    expected_frames = 1 + features.audio.sample_rate // features.audio.hop_length
    if produced.frames.shape != (expected_frames, features.audio.n_mels):
        raise ModelStoreError(
            f"features.audio.n_mels: extractor produced {produced.frames.shape[1]} bands, manifest says "
            f"{features.audio.n_mels}"
        )
    # text: the encoder the manifest names must exist and embed to its dimension
    folder = text_encoder_dir(store, features)
    if not folder.is_dir():
        raise ModelStoreError(
            f"features.text.encoder/encoder_version: {features.text.encoder}/{features.text.encoder_version} "
            "is not in the model store"
        )
    encoder = TextEncoder(folder, max_tokens=features.text.max_tokens)
    encoder.verify()
    dim = encoder.embed(["contract check"]).shape[1]
    if dim != features.text.dim:
        raise ModelStoreError(f"features.text.dim: the encoder gives {dim}, manifest says {features.text.dim}")
    # visual: the extractor must make every channel of the model's profile; the face models must load
    if not visual_space.producible(features.visual):
        missing = [c for c in features.visual.channel_names if c not in visual_space.FULL_CHANNELS]
        raise ModelStoreError(
            f"features.visual.profile: {features.visual.profile!r} needs channels this server's extractor "
            f"cannot produce ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}); it produces the "
            f"profiles {', '.join(visual_space.producible_profiles())}"
        )
    try:
        FaceModels(store)
    except (FaceModelError, OSError) as exc:
        raise ModelStoreError(f"features.visual: the face models cannot be loaded ({exc})") from exc


@asynccontextmanager
async def running_services(
    settings: Settings, metrics: Metrics, *, workers: Workers | None = None
) -> AsyncIterator[Services]:
    """Every service, started and warm; on exit (or a failed start) stopped in order: jobs
    first (cancelling one kills its worker and removes its folder), then the batcher
    (finishes queued inferences, refuses new ones), then the workers.

    ``workers``: where extraction runs; by default a pool of ``settings.workers`` processes.
    """
    # a request lives at most its upload, its time limit and the inference: older folders are orphans
    swept = sweep_stale_folders(settings.spool_dir, older_than_s=settings.request_timeout_s + 3600)
    if swept:
        log.warning("removed %d upload folders left by an earlier process", swept)
    model = load_fusion(settings.model_store, settings.fusion_version)
    manifest = model.manifest
    # refuse to start when the extractors cannot produce what the manifest declares
    await anyio.to_thread.run_sync(check_contract, manifest.features, settings.model_store)
    runner = FusionRunner(model, RuntimeConfig.for_fusion(settings))
    await anyio.to_thread.run_sync(runner.warm_up, settings.batch_max_windows)
    if workers is None:
        workers = ExtractionPool(
            settings.workers,
            settings.model_store,
            manifest.features,
            RuntimeConfig.for_workers(settings),
            memory_limit_bytes=settings.worker_memory_bytes,
            on_replace=lambda cause: metrics.worker_replacements_total.labels(cause=cause).inc(),
        )
    async with AsyncExitStack() as stack:
        await workers.start()
        stack.push_async_callback(anyio.to_thread.run_sync, workers.close)
        _publish_models(metrics, model, runner, workers)
        batcher = FusionBatcher(
            runner, metrics, max_batch_windows=settings.batch_max_windows, max_wait_ms=settings.batch_max_wait_ms
        )
        await batcher.start()
        stack.push_async_callback(batcher.stop)
        admission = Admission(running=settings.workers, waiting=settings.max_waiting_requests)
        store, rate_limiter = _shared_state(settings, metrics)
        stack.push_async_callback(store.close)
        jobs = JobManager(
            store,
            metrics,
            admission,
            ttl_s=settings.job_ttl_s,
            max_jobs=settings.max_jobs,
            delete_on_read=settings.job_delete_on_read,
            job_slots=settings.workers,
        )
        await jobs.start()
        stack.push_async_callback(jobs.stop)
        pipeline = Pipeline(settings, metrics, model, runner.provider, workers, batcher, admission, jobs)
        services = Services(
            settings=settings,
            metrics=metrics,
            model=model,
            runner=runner,
            batcher=batcher,
            workers=workers,
            admission=admission,
            rate_limiter=rate_limiter,
            jobs=jobs,
            pipeline=pipeline,
            ready=True,
        )
        log.info(
            "serving fusion/%s on %s (batches of up to %d windows, %.1f ms wait)",
            manifest.version,
            runner.provider,
            settings.batch_max_windows,
            settings.batch_max_wait_ms,
        )
        try:
            yield services
        finally:
            services.ready = False


def _shared_state(settings: Settings, metrics: Metrics) -> tuple[JobStore, ClientRateLimit]:
    """Jobs and rate limits in this process (the default), or in the Redis all replicas share."""
    if settings.redis_url is None:
        return InMemoryJobStore(), RateLimiter(settings.rate_limit_per_minute)
    client = redis_store.connect(settings.redis_url, timeout_s=settings.redis_timeout_s)
    store = redis_store.RedisJobStore(client, lease_s=settings.job_lease_s, prefix=settings.redis_prefix)
    limiter = redis_store.RedisRateLimiter(
        client,
        settings.rate_limit_per_minute,
        prefix=settings.redis_prefix,
        on_unavailable=metrics.shared_store_errors_total.labels(part="rate_limits").inc,
    )
    log.info("jobs and rate limits are shared in Redis (prefix %s)", settings.redis_prefix)
    return store, limiter


def _publish_models(metrics: Metrics, model: FusionModel, runner: FusionRunner, workers: Workers) -> None:
    """The served model and the providers every session really runs on, as metrics."""
    manifest = model.manifest
    metrics.model_info.info(
        {
            "name": manifest.name,
            "version": str(manifest.version),
            "training_data": manifest.provenance.training_data,
            "clinically_validated": str(manifest.provenance.clinically_validated).lower(),
            "provider": runner.provider,
        }
    )
    for provider in runner.providers:
        metrics.session_provider.labels(model="fusion", provider=provider).set(1 if provider == runner.provider else 0)
    for worker_model, providers in workers.session_providers().items():
        metrics.session_provider.labels(model=worker_model, provider=providers[0]).set(1)
