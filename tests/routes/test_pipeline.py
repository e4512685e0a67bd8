"""The pipeline without any transport: what a batch or stream entry point would call."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.contract import AudioSpec
from app.errors import PayloadTooLargeError
from app.features import growing_audio
from app.metrics import Metrics
from app.pipeline.extraction import ExtractionModels
from app.upload.form import ReceivedFile, ReceivedForm
from tests.api.helpers import valid_answer
from tests.media import GrowingWav, speech_signal
from tests.routes.conftest import in_process
from tests.routes.helpers import TRANSCRIPT


def test_files_on_disk_go_through_the_same_pipeline_with_no_http_at_all(
    tmp_path: Path, extraction_models: ExtractionModels
) -> None:
    source = tmp_path / "interview.txt"
    source.write_text(TRANSCRIPT)
    spool = tmp_path / "spool"
    spool.mkdir()
    seen: list[Path] = []

    async def from_disk(folder: Path) -> ReceivedForm:
        # a batch entry point: the transcript file is copied into the private folder it is given
        seen.append(folder)
        copy = Path(shutil.copy(source, folder / "transcript.txt"))
        file = ReceivedFile(size=copy.stat().st_size, suffix="txt", content_type="text/plain", data=copy.read_bytes())
        return ReceivedForm(files={"transcript": file}, fields={"include_timeline": "false"})

    async def refuse(folder: Path) -> ReceivedForm:
        raise PayloadTooLargeError("the transcript part is larger than 2097152 bytes")

    async def run() -> None:
        settings = Settings(spool_dir=spool, providers=["cpu"])
        async with in_process(extraction_models)(settings, Metrics()) as services:
            answer = await services.pipeline.predict(from_disk, "batch-0001")
            valid_answer(answer.model_dump(mode="json"), used={"text"})
            assert answer.request_id == "batch-0001" and answer.timeline is None
            with pytest.raises(PayloadTooLargeError):
                await services.pipeline.predict(refuse, "batch-0002")

    asyncio.run(run())
    assert seen and not seen[0].exists(), "the private folder outlived the call"
    assert list(spool.iterdir()) == []


def test_a_running_estimate_computes_only_the_new_audio_frames_and_answers_as_a_full_decode(
    tmp_path: Path, extraction_models: ExtractionModels
) -> None:
    # a live session's estimates: the WAV grows between them, its final frames kept in the cache
    words = speech_signal("I have been feeling low and tired, and I do not enjoy things any more.")
    call = np.tile(np.concatenate([words, np.zeros(4000, np.float32)]), 20)[: 75 * 16000]
    wav, cache = GrowingWav(tmp_path / "stream-audio.wav"), tmp_path / "stream-audio.mel"
    settings = Settings(spool_dir=tmp_path, providers=["cpu"])

    def form(audio_cache: Path | None) -> ReceivedForm:
        audio = ReceivedFile(wav.path.stat().st_size, "wav", "audio/wav", path=wav.path)
        return ReceivedForm(files={"audio": audio}, fields={"include_timeline": "true"}, audio_cache=audio_cache)

    async def run() -> None:
        async with in_process(extraction_models)(settings, Metrics()) as services:
            cut = 0
            for seconds in (45, 62, 75):
                wav.append(call[cut : seconds * 16000])
                cut = seconds * 16000
                running = await services.pipeline.interim(form(cache), "live-0001")
                decoded = await services.pipeline.interim(form(None), "live-0001")
                assert running.inputs.audio.used and running.inputs.audio.duration_s == pytest.approx(seconds)
                assert running.phq8.total == pytest.approx(decoded.phq8.total, abs=1e-3)
                assert [w.total for w in running.timeline] == pytest.approx(
                    [w.total for w in decoded.timeline], abs=1e-3
                )
                rows = cache.stat().st_size // (4 * (AudioSpec().n_mels + 1))
                assert rows == growing_audio.cached_rows(cut, AudioSpec())

    asyncio.run(run())
    wav.close()
