"""The speech stage against a real server (worker processes, real decoding, the bytes on the
wire): a call recording with no transcript is answered from the patient's voice and words,
and none of those words reach the server's log."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.api.conftest import RunningServer
from tests.api.helpers import valid_answer
from tests.asr_clips import word_error_rate
from tests.interviews import interview
from tests.media import write_audio

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_leftovers")]


def test_a_call_recording_without_transcript_is_heard_in_a_worker_and_nothing_heard_is_logged(
    running_server: RunningServer, tmp_path: Path
) -> None:
    spoken = interview("en+anika", "en-us", exchanges=6)
    audio = Path(write_audio(spoken.samples, 16000, tmp_path / "call.wav")).read_bytes()
    response = httpx.post(
        running_server.url + "/predict",
        files={"audio": ("call.wav", audio, "audio/wav")},
        data={"include_timeline": "false", "return_transcript": "true"},
        timeout=180,
    )
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"audio", "text"})
    assert answer.inputs.speakers.count == 2 and answer.inputs.speakers.participant == "speaker 1"
    assert answer.inputs.text.source == "speech recognition"
    heard = " ".join(s.text for s in answer.inputs.text.transcript)
    assert word_error_rate(spoken.patient_text, heard) < 0.3
    # the worker's session providers are what /models says
    speech = httpx.get(running_server.url + "/models", timeout=30).json()["speech"]
    assert speech["speech_to_text"]["execution_providers"] == ["CPUExecutionProvider"]
    # privacy: neither the recognised words nor the script reach the log
    log = running_server.log().lower()
    distinctive = {w.strip(".,?").lower() for w in heard.split() if len(w.strip(".,?")) >= 7}
    assert distinctive and not [w for w in distinctive if w in log]
