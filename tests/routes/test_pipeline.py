"""The pipeline without any transport: what a batch or stream entry point would call."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from app.config import Settings
from app.errors import PayloadTooLargeError
from app.metrics import Metrics
from app.pipeline.extraction import ExtractionModels
from app.upload.form import ReceivedFile, ReceivedForm
from tests.api.helpers import valid_answer
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
