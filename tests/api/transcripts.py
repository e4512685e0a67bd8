"""The test interview's answers written in every transcript format the API reads."""

from __future__ import annotations

import json

from tests.api.conftest import ANSWERS

QUESTION = "How have you been feeling lately?"


Turn = tuple[float, float, str, str]  # start_s, end_s, speaker, text


def _turns(step: float = 4.0) -> list[Turn]:
    """Interviewer question, participant answer, alternating, with made-up times in seconds."""
    turns, t = [], 0.0
    for answer in ANSWERS:
        turns.append((t, t + 1.5, "Ellie", QUESTION))
        turns.append((t + 1.5, t + step, "Participant", answer))
        t += step
    return turns


def _clock(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def plain() -> str:
    return "\n".join(ANSWERS) + "\n"


def webvtt(turns: list[Turn] | None = None) -> str:
    cues = [f"{_clock(a, '.')} --> {_clock(b, '.')}\n<v {who}>{text}\n" for a, b, who, text in turns or _turns()]
    return "WEBVTT\n\n" + "\n".join(cues)


def srt() -> str:
    cues = [
        f"{i}\n{_clock(a, ',')} --> {_clock(b, ',')}\n{who}: {text}\n"
        for i, (a, b, who, text) in enumerate(_turns(), 1)
    ]
    return "\n".join(cues)


def daic_tsv() -> str:
    rows = ["start_time\tstop_time\tspeaker\tvalue"]
    rows += [f"{a:.3f}\t{b:.3f}\t{who}\t{text}" for a, b, who, text in _turns()]
    return "\n".join(rows) + "\n"


def json_segments() -> str:
    return json.dumps({"segments": [{"start": a, "end": b, "speaker": w, "text": t} for a, b, w, t in _turns()]})


FORMATS = {
    "transcript.txt": plain,
    "transcript.vtt": webvtt,
    "transcript.srt": srt,
    "transcript.tsv": daic_tsv,
    "transcript.json": json_segments,
}
