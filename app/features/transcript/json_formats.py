"""JSON transcripts: segment lists, Whisper and WhisperX output, AWS Transcribe output.

- Segments: a list of objects, or an object holding one under ``segments`` (Whisper,
  WhisperX) or ``utterances``; each with ``text``, optional ``start`` / ``end`` in
  seconds and optional ``speaker``. An object with only ``text`` (Whisper without
  segments) is read as plain text. The dialect is ``whisper json`` when the object
  carries Whisper's ``language`` or its segments Whisper's decoding fields (``seek``,
  ``tokens``, ``avg_logprob``), ``whisperx json`` when segments carry word timings or
  speakers from WhisperX's diarisation, else ``json segments``.
- AWS Transcribe: ``{"results": {"transcripts": [...], "items": [...], "speaker_labels":
  {"segments": [...]}}}``. Items are words (``pronunciation``, with ``start_time`` /
  ``end_time`` as strings and ``alternatives[0].content``) and ``punctuation`` (no times;
  it joins the word before). A word's speaker is its own ``speaker_label`` (newer
  output) or that of the ``speaker_labels`` segment holding its start time; consecutive
  words of one speaker make a turn. Output with ``audio_segments`` but no items is read
  from those (each with ``transcript``, times and ``speaker_label``); output without
  speaker labels gives unlabelled turns split at sentence ends.
"""

from __future__ import annotations

import bisect

from app.features.transcript.cleaning import check_times, clean_speaker, clean_text, parse_seconds, turn_utterances
from app.features.transcript.utterance import FORMAT_JSON, TranscriptError, Utterance

_JSON_KEYS = {
    "text": ("text", "transcript", "utterance", "value"),
    "start": ("start", "start_time", "start_s"),
    "end": ("end", "end_time", "stop", "stop_time", "end_s"),
    "speaker": ("speaker", "speaker_label", "role"),
}
_WHISPER_SEGMENT_KEYS = ("seek", "tokens", "avg_logprob", "compression_ratio", "no_speech_prob")
DIALECT_AWS = "aws transcribe json"


def parse_json(parsed: object, plain_utterances) -> tuple[list[Utterance], str]:
    """Parsed JSON -> (utterances, dialect); ``plain_utterances`` splits a bare text into utterances."""
    if isinstance(parsed, dict) and isinstance(parsed.get("results"), dict):
        return _parse_aws(parsed["results"]), DIALECT_AWS
    segments: object = parsed
    dialect = "json segments"
    if isinstance(parsed, dict):
        container = next((key for key in ("segments", "utterances") if key in parsed), None)
        if container is not None:
            segments = parsed[container]
        elif isinstance(parsed.get("text"), str):
            return [Utterance(text, None, None, None) for text in plain_utterances(parsed["text"])], "whisper json"
        else:
            raise TranscriptError(
                "expected a list of segments, an object with 'segments', or AWS Transcribe's 'results'", FORMAT_JSON
            )
        if isinstance(parsed.get("language"), str) or "word_segments" in parsed:
            dialect = "whisper json"
    if not isinstance(segments, list):
        raise TranscriptError("'segments' must be a list", FORMAT_JSON)
    utterances: list[Utterance] = []
    for number, segment in enumerate(segments, start=1):
        where = f"segment {number}"
        if not isinstance(segment, dict):
            raise TranscriptError(f"{where} is not an object", FORMAT_JSON)
        if any(key in segment for key in _WHISPER_SEGMENT_KEYS) and dialect == "json segments":
            dialect = "whisper json"
        values = {role: next((segment[k] for k in keys if k in segment), None) for role, keys in _JSON_KEYS.items()}
        if values["text"] is None:
            words = ""
        elif isinstance(values["text"], str):
            words = values["text"]
        else:
            raise TranscriptError(f"{where}: 'text' must be a string", FORMAT_JSON)
        times = {role: _json_seconds(values[role], role, where) for role in ("start", "end")}
        check_times(times["start"], times["end"], FORMAT_JSON, where)
        speaker = values["speaker"]
        # Diarisers label speakers "SPEAKER_00" or 0; both are labels.
        if isinstance(speaker, bool) or not isinstance(speaker, (str, int, type(None))):
            raise TranscriptError(f"{where}: 'speaker' must be a string", FORMAT_JSON)
        label = clean_speaker(str(speaker)) if speaker is not None else None
        utterances.append(Utterance(clean_text(words), times["start"], times["end"], label))
    if dialect == "whisper json" and any(isinstance(s, dict) and ("words" in s or "speaker" in s) for s in segments):
        dialect = "whisperx json"
    return utterances, dialect


def _json_seconds(value: object, role: str, where: str, fmt: str = FORMAT_JSON) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    seconds: float | None = None
    if isinstance(value, str):
        seconds = parse_seconds(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    if seconds is None:
        raise TranscriptError(f"{where}: '{role}' must be a number of seconds", fmt)
    return seconds


def _parse_aws(results: dict) -> list[Utterance]:
    items = results.get("items")
    if not isinstance(items, list) or not items:
        return _parse_aws_audio_segments(results)
    segment_starts, segment_labels = _aws_speaker_segments(results.get("speaker_labels"))
    turns: list[tuple[str | None, list[str], float | None, float | None]] = []
    for number, item in enumerate(items, start=1):
        where = f"results.items {number}"
        if not isinstance(item, dict):
            raise TranscriptError(f"{where} is not an object", DIALECT_AWS)
        alternatives = item.get("alternatives")
        first = alternatives[0] if isinstance(alternatives, list) and alternatives else None
        content = first.get("content") if isinstance(first, dict) else None
        if not isinstance(content, str):
            raise TranscriptError(f"{where}: expected alternatives[0].content, a string", DIALECT_AWS)
        if item.get("type") == "punctuation":
            if turns:  # "word" + "," -> "word,"
                turns[-1][1][-1] += content
            continue
        start = _json_seconds(item.get("start_time"), "start_time", where, DIALECT_AWS)
        end = _json_seconds(item.get("end_time"), "end_time", where, DIALECT_AWS)
        check_times(start, end, DIALECT_AWS, where)
        speaker = item.get("speaker_label")
        if speaker is None and start is not None and segment_starts:
            at = bisect.bisect_right(segment_starts, start) - 1
            speaker = segment_labels[at] if at >= 0 else None
        if speaker is not None and not isinstance(speaker, str):
            raise TranscriptError(f"{where}: 'speaker_label' must be a string", DIALECT_AWS)
        label = clean_speaker(speaker)
        if turns and turns[-1][0] == label:
            turns[-1][1].append(content)
            if end is not None:
                turns[-1] = (label, turns[-1][1], turns[-1][2], end)
        else:
            turns.append((label, [content], start, end))
    # without diarisation the whole job is one turn: split into sentences, inside the encoder's limit
    return [u for label, words, start, end in turns for u in turn_utterances(" ".join(words), start, end, label)]


def _aws_speaker_segments(speaker_labels: object) -> tuple[list[float], list[str | None]]:
    """(start times, labels) of the speaker segments, sorted by start, for looking up a word's speaker."""
    if not isinstance(speaker_labels, dict) or not isinstance(speaker_labels.get("segments"), list):
        return [], []
    found: list[tuple[float, str | None]] = []
    for number, segment in enumerate(speaker_labels["segments"], start=1):
        where = f"results.speaker_labels.segments {number}"
        if not isinstance(segment, dict):
            raise TranscriptError(f"{where} is not an object", DIALECT_AWS)
        start = _json_seconds(segment.get("start_time"), "start_time", where, DIALECT_AWS)
        label = segment.get("speaker_label")
        if start is None or not isinstance(label, str):
            raise TranscriptError(f"{where}: expected start_time and speaker_label", DIALECT_AWS)
        found.append((start, label))
    found.sort(key=lambda pair: pair[0])
    return [start for start, _ in found], [label for _, label in found]


def _parse_aws_audio_segments(results: dict) -> list[Utterance]:
    segments = results.get("audio_segments")
    if not isinstance(segments, list):
        # a job without word items: only the whole transcript text, no times
        transcripts = results.get("transcripts")
        transcripts = transcripts if isinstance(transcripts, list) else []
        texts = [t.get("transcript") for t in transcripts if isinstance(t, dict)]
        if not all(isinstance(t, str) for t in texts):
            raise TranscriptError("results.transcripts: expected objects with a 'transcript' string", DIALECT_AWS)
        return [u for t in texts for u in turn_utterances(t, None, None, None)]
    utterances: list[Utterance] = []
    for number, segment in enumerate(segments, start=1):
        where = f"results.audio_segments {number}"
        if not isinstance(segment, dict) or not isinstance(segment.get("transcript"), str):
            raise TranscriptError(f"{where}: expected an object with a 'transcript' string", DIALECT_AWS)
        start = _json_seconds(segment.get("start_time"), "start_time", where, DIALECT_AWS)
        end = _json_seconds(segment.get("end_time"), "end_time", where, DIALECT_AWS)
        check_times(start, end, DIALECT_AWS, where)
        speaker = segment.get("speaker_label")
        if speaker is not None and not isinstance(speaker, str):
            raise TranscriptError(f"{where}: 'speaker_label' must be a string", DIALECT_AWS)
        utterances.extend(turn_utterances(segment["transcript"], start, end, clean_speaker(speaker)))
    return utterances
