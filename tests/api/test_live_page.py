"""The /live page in headless Chromium against a real server, with fake capture devices:
the generated moving face (a y4m file) as the camera and generated speech (a WAV) as the
microphone. The page must stream them over /stream, show running estimates with their
interval, weights and timeline (the face tracked as it comes, the speech), and after Stop the
final answer; the research-use notice stays on screen, and the page requests nothing outside
the server.

The server runs with the face and speech minimums lowered to 8 s so a session of about
25 s of real time is enough evidence; everything else is the default service.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from tests.api.browser import DevToolsPage, find_browser, open_page
from tests.api.conftest import RunningServer, start_server
from tests.media import face_frames

CAMERA_FPS = 10
CAMERA_SECONDS = 12  # the fake camera loops its file
EVIDENCE_S = "8"


def write_y4m(path: Path, frames: Iterable[np.ndarray], fps: int) -> Path:
    """RGB frames as an uncompressed YUV4MPEG2 (4:2:0) file, the format Chromium's fake camera plays."""
    with path.open("wb") as out:
        for index, frame in enumerate(frames):
            if index == 0:
                height, width = frame.shape[:2]
                out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("live-server")
    with start_server(folder, min_face_seconds=EVIDENCE_S, min_speech_seconds=EVIDENCE_S) as running:
        yield running


def _notice_on_screen(page: DevToolsPage) -> bool:
    return page.evaluate(
        """(() => {
            const notice = document.getElementById('notice');
            const box = notice.getBoundingClientRect();
            return notice.textContent.includes('Research use only') && box.top >= 0 && box.height > 0
                && box.bottom <= window.innerHeight && getComputedStyle(notice).visibility === 'visible';
        })()"""
    )


READ_ESTIMATE = """(() => ({
    total: document.getElementById('estimate-total').textContent,
    interval: document.getElementById('estimate-interval').textContent,
    level: document.getElementById('estimate-level').textContent,
    bars: [...document.querySelectorAll('#weights .bar')].map(b => [b.dataset.modality, Number(b.dataset.weight)]),
    points: document.querySelectorAll('#timeline circle.estimate').length,
    states: [...document.querySelectorAll('#modality-states li')].map(li => li.textContent),
    streamTime: Number(document.getElementById('stream-time').textContent),
    framesSent: Number(document.getElementById('frames-sent').textContent),
    audioSent: Number(document.getElementById('audio-sent').textContent),
}))()"""


def test_the_page_streams_camera_and_microphone_and_shows_estimates_and_the_final_answer(
    live_server: RunningServer, media: dict, tmp_path: Path
) -> None:
    browser = find_browser()
    camera = write_y4m(tmp_path / "camera.y4m", face_frames(CAMERA_FPS * CAMERA_SECONDS, (320, 240), "pan"), CAMERA_FPS)
    flags = [
        "--use-fake-ui-for-media-stream",  # grant camera and microphone without a prompt
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
        f"--use-file-for-fake-audio-capture={media['wav']}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with open_page(browser, live_server.url + "/live", tmp_path / "profile", flags) as page:
        assert _notice_on_screen(page)
        page.evaluate("document.getElementById('start').click()")
        # the camera's face (tracked as it comes), the microphone's speech and its words (heard
        # as they come), in one running estimate
        every = """(() => {
            const states = [...document.querySelectorAll('#modality-states li')].map(li => li.textContent);
            return ['visual: used', 'audio: used', 'text: used'].every(state => states.includes(state));
        })()"""
        page.wait_for(every, 90)
        running = page.evaluate(READ_ESTIMATE)
        assert 0 <= float(running["total"]) <= 24
        low, _, high = running["interval"].partition(" to ")
        assert float(low) <= float(running["total"]) <= float(high), running
        assert running["level"].endswith("% interval")
        weights = dict(running["bars"])
        assert set(weights) == {"visual", "audio", "text"} and sum(weights.values()) == pytest.approx(1, abs=0.01)
        assert weights["visual"] > 0 and weights["audio"] > 0 and weights["text"] > 0, weights
        assert running["points"] >= 1
        assert running["framesSent"] >= CAMERA_FPS * 5 and running["audioSent"] >= 8, running
        assert _notice_on_screen(page)

        page.wait_for("Number(document.getElementById('stream-time').textContent) >= 22", 60)
        page.evaluate("document.getElementById('stop').click()")
        page.wait_for("!document.getElementById('final').hidden", 180)
        answer = json.loads(page.evaluate("document.getElementById('final-json').textContent"))
        shown = page.evaluate("document.getElementById('final-total').textContent")
        sent = page.evaluate(READ_ESTIMATE)
        assert page.evaluate("document.getElementById('problem').hidden")
        assert _notice_on_screen(page)
        requests = list(page.requests)
        console = list(page.console)

    assert shown == f"{answer['phq8']['total']:.1f}"
    assert answer["notice"].startswith("Research use only") or "research" in answer["notice"].lower()
    # the pictures and the sound the page captured reached the model: the face was found and
    # moves, the speech was heard (the fake devices' content, through the page's encoders)
    assert answer["inputs"]["visual"]["used"], answer["inputs"]["visual"]
    assert answer["inputs"]["audio"]["used"], answer["inputs"]["audio"]
    text = answer["inputs"]["text"]  # no captions: the words come from the microphone's speech
    assert text["used"] and text["source"] == "speech recognition" and text["quality"]["words"] >= 25, text
    assert answer["attention"]["modalities"] == pytest.approx(dict(sent["bars"]), abs=1e-6)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(live_server.url))
    assert origin + "/live-assets/live.js" in requests, requests
    outside = [url for url in requests if not url.startswith(origin + "/")]
    assert not outside, f"the page fetched from outside the server: {outside}"
    assert not [line for line in console if line.startswith("uncaught")], console
