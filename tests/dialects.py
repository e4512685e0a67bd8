"""One generated interview written in every transcript dialect the service reads, with its ground truth.

Nothing is committed as a fixture: each writer renders the same turns the way that tool
does (Zoom names a speaker only on a turn's first cue, Otter and Rev give start times in
turn headers, AWS Transcribe gives one item per word, ...), and ``Truth`` says what the
participant's share must parse to.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

CLINICIAN = "Dr. Ada Quill, PsyD"
PATIENT = "+1 415 555 0134"  # a dial-in caller on a video visit

QUESTIONS = [
    "How have you been sleeping lately?",
    "And how is your energy during the day?",
    "Have you still been seeing your friends?",
    "How is your appetite these days?",
    "What would you like to change first?",
]
ANSWERS = [
    "Not well at all, I wake up at four most nights and I cannot get back to sleep again.",
    "I am tired all the time, even after a long weekend I feel like I have run a marathon.",
    "Not really, I cancelled on them twice this month because I could not face going out.",
    "I skip lunch most days and in the evening I just eat whatever is in the cupboard.",
    "I would like to feel more like myself again and maybe start walking in the mornings.",
]


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str
    text: str


def interview(clinician: str = CLINICIAN, patient: str = PATIENT) -> list[Turn]:
    """Question, answer, ...; contiguous turns (each ends where the next starts), the clinician last."""
    turns, t = [], 0.0
    for question, answer in zip(QUESTIONS, ANSWERS, strict=True):
        # whole seconds: Otter's turn headers hold no fractions
        turns.append(Turn(t, t + 3.0, clinician, question))
        turns.append(Turn(t + 3.0, t + 9.0, patient, answer))
        t += 9.0
    turns.append(Turn(t, t + 2.0, clinician, "Thank you, that is all for today."))
    return turns


@dataclass(frozen=True)
class Truth:
    utterances: int  # the participant's utterances as the dialect splits them
    words: int
    seconds: float | None  # summed participant turn durations


def truth(turns: list[Turn], speaker: str | None = PATIENT, pieces_per_turn: int = 1) -> Truth:
    mine = [t for t in turns if speaker is None or t.speaker == speaker]
    return Truth(
        utterances=len(mine) * pieces_per_turn,
        words=sum(len(t.text.split()) for t in mine),
        seconds=round(sum(t.end - t.start for t in mine), 3),
    )


def _clock(seconds: float, sep: str = ".", hours: bool = True) -> str:
    ms = round(seconds * 1000)
    h, m, s, frac = ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60, ms % 1000
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{frac:03d}" if hours else f"{m:02d}:{s:02d}{sep}{frac:03d}"


def _halves(turn: Turn) -> list[tuple[float, float, str]]:
    """A turn as two cues, split at a word boundary halfway."""
    words = turn.text.split()
    middle = turn.start + (turn.end - turn.start) / 2
    return [
        (turn.start, middle, " ".join(words[: len(words) // 2])),
        (middle, turn.end, " ".join(words[len(words) // 2 :])),
    ]


def zoom_vtt(turns: list[Turn]) -> str:
    """Zoom: numbered cues, "Name: text" on a turn's first cue only (every turn spread over two cues)."""
    cues, n = [], 0
    for turn in turns:
        for i, (a, b, text) in enumerate(_halves(turn)):
            n += 1
            cues.append(f"{n}\n{_clock(a)} --> {_clock(b)}\n{turn.speaker + ': ' if i == 0 else ''}{text}\n")
    return "WEBVTT\n\n" + "\n".join(cues)


def teams_vtt(turns: list[Turn]) -> str:
    cues = [
        f"{i}-0\n{_clock(t.start)} --> {_clock(t.end)}\n<v {t.speaker}>{t.text}</v>\n" for i, t in enumerate(turns)
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def srt(turns: list[Turn]) -> str:
    return "\n".join(
        f"{i}\n{_clock(t.start, ',')} --> {_clock(t.end, ',')}\n{t.speaker}: {t.text}\n" for i, t in enumerate(turns, 1)
    )


def sbv(turns: list[Turn]) -> str:
    def clock(s: float) -> str:
        return _clock(s)[1:]  # H:MM:SS.mmm

    return "\n".join(f"{clock(t.start)},{clock(t.end)}\n{t.speaker}: {t.text}\n" for t in turns)


def _otter_clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def otter_txt(turns: list[Turn]) -> str:
    return "\n".join(f"{t.speaker}  {_otter_clock(t.start)}\n{t.text}\n" for t in turns)


def rev_txt(turns: list[Turn]) -> str:
    return "\n".join(f"{t.speaker} ({_clock(t.start, hours=True)[:8]}):\n{t.text}\n" for t in turns)


def rev_spaced_txt(turns: list[Turn]) -> str:
    return "\n".join(f"{t.speaker}  {_clock(t.start)[:8]}\n{t.text}\n" for t in turns)


def _aws_words(turns: list[Turn], labels: dict[str, str]) -> tuple[list[dict], list[dict]]:
    items, segments = [], []
    for turn in turns:
        words = turn.text.split()
        step = (turn.end - turn.start) / len(words)
        seg_items = []
        for k, word in enumerate(words):
            a, b = turn.start + k * step, turn.start + (k + 1) * step
            punct = word[-1] if word[-1] in ",.?!" else None
            content = word.rstrip(",.?!")
            times = {"start_time": f"{a:.3f}", "end_time": f"{b:.3f}"}
            items.append(
                {
                    "id": len(items),
                    "type": "pronunciation",
                    **times,
                    "alternatives": [{"confidence": "0.99", "content": content}],
                }
            )
            seg_items.append({**times, "speaker_label": labels[turn.speaker]})
            if punct:
                items.append({"id": len(items), "type": "punctuation", "alternatives": [{"content": punct}]})
        segments.append(
            {
                "start_time": f"{turn.start:.3f}",
                "end_time": f"{turn.end:.3f}",
                "speaker_label": labels[turn.speaker],
                "items": seg_items,
            }
        )
    return items, segments


def aws_json(turns: list[Turn]) -> str:
    """AWS Transcribe batch output with diarisation: word items, speakers only in speaker_labels.segments."""
    labels = {speaker: f"spk_{i}" for i, speaker in enumerate(dict.fromkeys(t.speaker for t in turns))}
    items, segments = _aws_words(turns, labels)
    results = {
        "transcripts": [{"transcript": " ".join(t.text for t in turns)}],
        "speaker_labels": {"channel_label": "ch_0", "speakers": len(labels), "segments": segments},
        "items": items,
    }
    return json.dumps({"jobName": "job", "accountId": "111122223333", "results": results, "status": "COMPLETED"})


def aws_audio_segments_json(turns: list[Turn]) -> str:
    """Newer AWS output read from audio_segments (no word items)."""
    labels = {speaker: f"spk_{i}" for i, speaker in enumerate(dict.fromkeys(t.speaker for t in turns))}
    segments = [
        {
            "id": i,
            "transcript": t.text,
            "start_time": f"{t.start:.3f}",
            "end_time": f"{t.end:.3f}",
            "speaker_label": labels[t.speaker],
            "items": [],
        }
        for i, t in enumerate(turns)
    ]
    return json.dumps({"results": {"transcripts": [{"transcript": "..."}], "audio_segments": segments}})


def whisperx_json(turns: list[Turn]) -> str:
    labels = {speaker: f"SPEAKER_{i:02d}" for i, speaker in enumerate(dict.fromkeys(t.speaker for t in turns))}
    segments = [
        {
            "start": t.start,
            "end": t.end,
            "text": " " + t.text,
            "speaker": labels[t.speaker],
            "words": [{"word": w, "speaker": labels[t.speaker]} for w in t.text.split()],
        }
        for t in turns
    ]
    return json.dumps({"segments": segments, "word_segments": []})


def whisper_json(turns: list[Turn]) -> str:
    """Whisper without diarisation: no speakers at all."""
    segments = [
        {"id": i, "seek": 0, "start": t.start, "end": t.end, "text": " " + t.text, "avg_logprob": -0.2}
        for i, t in enumerate(turns)
    ]
    return json.dumps({"text": " ".join(t.text for t in turns), "segments": segments, "language": "en"})


def daic_tsv(turns: list[Turn]) -> str:
    rows = ["start_time\tstop_time\tspeaker\tvalue"]
    rows += [f"{t.start:.3f}\t{t.end:.3f}\t{t.speaker}\t{t.text}" for t in turns]
    return "\n".join(rows) + "\n"


def plain_prefixed(turns: list[Turn]) -> str:
    return "\n".join(f"{t.speaker}: {t.text}" for t in turns) + "\n"


@dataclass(frozen=True)
class Dialect:
    name: str  # what inputs.text.format must say
    write: Callable[[list[Turn]], str]
    pieces_per_turn: int = 1  # utterances one participant turn parses to
    timed_ends: bool = True  # the format gives every participant turn an end time
    speakers: bool = True  # the format carries speaker labels (the AWS and WhisperX ones anonymise)
    extension: str = "txt"


DIALECTS = [
    Dialect("webvtt (zoom)", zoom_vtt, pieces_per_turn=2, extension="vtt"),
    Dialect("webvtt (teams)", teams_vtt, extension="vtt"),
    Dialect("srt", srt, extension="srt"),
    Dialect("sbv", sbv, extension="sbv"),
    Dialect("otter txt", otter_txt),
    Dialect("rev txt", rev_txt),
    Dialect("rev txt", rev_spaced_txt),
    Dialect("aws transcribe json", aws_json, extension="json"),
    Dialect("aws transcribe json", aws_audio_segments_json, extension="json"),
    Dialect("whisperx json", whisperx_json, extension="json"),
    Dialect("whisper json", whisper_json, speakers=False, extension="json"),
    Dialect("tsv", daic_tsv, extension="tsv"),
    Dialect("text", plain_prefixed, timed_ends=False),
]
