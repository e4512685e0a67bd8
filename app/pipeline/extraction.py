"""One interview's uploads -> model windows and a per-modality report (runs in a worker).

CPU-bound and self-contained: everything it needs arrives in the job, so it runs in
a worker process and never on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.contract import FeatureSpec
from app.errors import CorruptMediaError, NoUsableInputError, TranscriptInvalidError, UnsupportedMediaError
from app.features import audio as audio_features
from app.features import visual_space
from app.features.transcript import TranscriptError, Utterance, parse_transcript, word_count
from app.fusion.store import text_encoder_dir
from app.probe import MediaInfo, probe
from app.windows import AudioTrack, TextTrack, VisualTrack, WindowBatch, build_windows


@dataclass(frozen=True)
class ExtractionJob:
    features: FeatureSpec
    model_store: Path
    video: Path | None = None
    audio: Path | None = None
    transcript: bytes | None = None
    transcript_hint: str | None = None
    transcript_content_type: str | None = None
    participant_speaker: str | None = None
    max_media_seconds: float = 3 * 3600.0
    min_speech_seconds: float = 30.0
    min_transcript_words: int = 25
    max_transcript_bytes: int = 2 << 20
    max_frame_pixels: int = 3840 * 2160
    max_streams: int = 16


# audio outside this range is not speech the pipeline can use (or a forged header)
SAMPLE_RATES_HZ = (4000, 768_000)
# frames smaller than this cannot hold a face the detector finds (its input is 128 px)
MIN_FRAME_SIDE = 32


@dataclass
class Extracted:
    windows: WindowBatch
    reports: dict[str, dict]
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


@contextmanager
def _stage(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's wall time to ``timings[name]`` (ms)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + 1000 * (time.perf_counter() - start)


CPU_ONLY = ("CPUExecutionProvider",)
# models loaded once per worker process and reused across its requests
_loaded: dict[tuple[str, Path], object] = {}


def text_encoder(model_dir: Path, threads: int = 1, providers: Sequence = CPU_ONLY):
    """The worker's text encoder; threads and providers count on first use (the warm-up)."""
    from app.features.text import TextEncoder

    key = ("text", model_dir)
    if key not in _loaded:
        _loaded[key] = TextEncoder(model_dir, providers=providers, intra_op_threads=threads)
    return _loaded[key]


def face_models(store: Path, threads: int = 1, providers: Sequence = CPU_ONLY):
    """The worker's face models; threads and providers count on first use (the warm-up)."""
    from app.features.visual import FaceModels

    key = ("face", store)
    if key not in _loaded:
        _loaded[key] = FaceModels(store, providers=providers, intra_op_threads=threads)
    return _loaded[key]


def _absent(reason: str) -> dict:
    return {"used": False, "reason": reason}


def extract(job: ExtractionJob) -> Extracted:
    features = job.features
    timings: dict[str, float] = {}
    warnings: list[str] = []
    reports: dict[str, dict] = {"visual": _absent("no video given"), "audio": _absent("no audio given")}
    reports["text"] = _absent("no transcript given")

    # probe: what the uploads hold, before decoding anything
    with _stage(timings, "probe"):
        video_info = probe(job.video, "video", job.max_streams) if job.video is not None else None
        audio_info = probe(job.audio, "audio", job.max_streams) if job.audio is not None else None
    if audio_info is not None and not audio_info.has_audio:
        raise UnsupportedMediaError("the audio upload holds no audio stream")
    if audio_info is not None and not _usable_rate(audio_info.sample_rate):
        raise UnsupportedMediaError(f"the audio upload's sample rate is outside {SAMPLE_RATES_HZ} Hz")
    if video_info is not None and not video_info.has_video and not video_info.has_audio:
        raise UnsupportedMediaError("the video upload holds neither video nor audio")

    # transcript: participant utterances (and speaker turns for the audio)
    utterances: list[Utterance] = []
    turns: list[tuple[float, float]] = []
    if job.transcript is not None:
        with _stage(timings, "transcript"):
            try:
                transcript = parse_transcript(
                    job.transcript, job.transcript_hint, job.transcript_content_type, job.max_transcript_bytes
                )
                utterances = transcript.participant(job.participant_speaker)
            except TranscriptError as exc:
                raise TranscriptInvalidError(str(exc)) from exc
        if not transcript.utterances:
            reports["text"] = _absent("the transcript is empty")
            warnings.append("the transcript is empty and was treated as absent")
        elif not utterances:
            reports["text"] = _absent("the transcript has no participant utterances")
            warnings.append("no utterances of the participant were found in the transcript")
        if transcript.speakers and transcript.has_timestamps:
            turns = [(u.start_s, u.end_s) for u in utterances if u.start_s is not None and u.end_s is not None]

    # visual: faces in the video (after the cheap checks above, so bad text fails fast)
    visual_track = None
    if video_info is not None:
        skip = _unusable_frames(video_info, job.max_frame_pixels)
        if skip:
            reports["visual"] = _absent(skip)
            warnings.append(skip + "; the visual branch was not used")
        else:
            with _stage(timings, "visual"):
                visual_track, reports["visual"] = _visual_branch(job, warnings)

    # audio: a separate audio upload wins over the video's own track
    audio_track, media_duration = None, None
    source, path = None, None
    if audio_info is not None:
        source, path = "audio upload", job.audio
        if video_info is not None and video_info.has_audio:
            warnings.append("both a video and an audio file were given; the audio file was used for the audio branch")
    elif video_info is not None and video_info.has_audio and not _usable_rate(video_info.sample_rate):
        reports["audio"] = _absent("the video's audio track has an unusable sample rate")
        warnings.append("the video's audio track has an unusable sample rate; audio was not used")
    elif video_info is not None and video_info.has_audio:
        source, path = "video audio track", job.video
    elif video_info is not None:
        reports["audio"] = _absent("the video has no audio track")
    if path is not None:
        with _stage(timings, "decode"):
            try:
                damage = audio_features.DecodeReport()
                signal = audio_features.decode_audio(
                    path, features.audio.sample_rate, job.max_media_seconds, report=damage
                )
                if damage.skipped_packets:
                    warnings.append(f"{damage.skipped_packets} damaged audio packets were skipped")
                if damage.truncated:
                    warnings.append("the audio breaks off in damaged data; the part before it was used")
            except audio_features.AudioDecodeError as exc:
                if source == "audio upload":
                    raise CorruptMediaError(f"the audio upload could not be decoded: {exc}") from exc
                signal = None
                reports["audio"] = _absent("the video's audio track could not be decoded")
                warnings.append("the video's audio track could not be decoded; audio was not used")
        if signal is not None:
            media_duration = signal.shape[0] / features.audio.sample_rate
            info = audio_info if source == "audio upload" else video_info
            if info is not None and info.duration_s and info.duration_s > job.max_media_seconds:
                warnings.append(f"the recording was cut at {job.max_media_seconds:.0f} s")
            with _stage(timings, "audio"):
                audio_track, report = _audio_branch(signal, turns, features, job, warnings)
            report["source"] = source
            reports["audio"] = report

    # text: the participant's utterances through the sentence encoder
    text_track = None
    words = sum(word_count(u.text) for u in utterances)
    if utterances and words < job.min_transcript_words:
        reason = f"only {words} words from the participant; at least {job.min_transcript_words} are needed"
        reports["text"] = _absent(reason)
        warnings.append("the transcript was not used: " + reason)
    elif utterances:
        with _stage(timings, "text"):
            text_track, reports["text"] = _text_branch(utterances, media_duration, features, job)

    if visual_track is None and audio_track is None and text_track is None:
        reasons = "; ".join(f"{m}: {r['reason']}" for m, r in reports.items() if not r["used"])
        raise NoUsableInputError(f"no modality is usable ({reasons})")
    with _stage(timings, "windows"):
        windows = build_windows(features, visual=visual_track, audio=audio_track, text=text_track)
    for k, name in enumerate(("visual", "audio", "text")):
        if reports[name]["used"]:
            reports[name]["windows"] = int(windows.modality_mask[:, k].sum())
    return Extracted(windows=windows, reports=reports, warnings=warnings, timings_ms=timings)


def _usable_rate(rate: int | None) -> bool:
    return rate is not None and SAMPLE_RATES_HZ[0] <= rate <= SAMPLE_RATES_HZ[1]


def _unusable_frames(info: MediaInfo, max_pixels: int) -> str | None:
    """Why the video's frames are not decoded at all, or None when they are fine."""
    if not info.has_video:
        return "the video holds no video stream"
    size = f"{info.width}x{info.height}"
    if info.frame_pixels > max_pixels:
        # refused before decoding: one such frame alone can take hundreds of MB
        return f"the video's {size} frames exceed the {max_pixels}-pixel cap"
    if min(info.width or 0, info.height or 0) < MIN_FRAME_SIDE:
        return f"the video's {size} frames are too small to find a face"
    return None


def _visual_branch(job: ExtractionJob, warnings: list[str]) -> tuple[VisualTrack | None, dict]:
    from app.features.visual import VisualDecodeError, VisualExtractor

    extractor = VisualExtractor(face_models(job.model_store), job.features.visual)
    try:
        result = extractor.extract(job.video, job.max_media_seconds)
    except VisualDecodeError:
        warnings.append("the video's frames could not be decoded; the visual branch was not used")
        return None, _absent("the video's frames could not be decoded")
    warnings.extend(result.notes)
    report = {
        "duration_s": round(result.duration_s, 2),
        "quality": {k: round(float(v), 4) for k, v in result.quality.items()},
    }
    if not result.valid.any():
        warnings.append("no face was found in the video; the visual branch was not used")
        return None, {"used": False, "reason": "no face was found in the video", **report}
    frames = visual_space.profile_frames(result.frames, job.features.visual)
    track = VisualTrack(frames=frames, valid=result.valid, confidence=result.confidence)
    return track, {"used": True, "source": "video", **report}


def _audio_branch(
    signal: np.ndarray,
    turns: list[tuple[float, float]],
    features: FeatureSpec,
    job: ExtractionJob,
    warnings: list[str],
) -> tuple[AudioTrack | None, dict]:
    spec = features.audio
    participant_only = False
    if turns:
        kept = audio_features.keep_segments(signal, spec.sample_rate, turns)
        if kept.size >= spec.sample_rate:
            signal, participant_only = kept, True
        else:
            warnings.append("the transcript's participant turns do not overlap the audio; all of the audio was used")
    acoustic = audio_features.audio_features(signal, spec)
    speech_s = float(acoustic.speech.sum()) / spec.rate_hz
    report = {
        "duration_s": round(acoustic.duration_s, 2),
        "quality": {
            "speech_ratio": round(acoustic.speech_ratio, 4),
            "speech_seconds": round(speech_s, 2),
            "snr_db": round(acoustic.snr_db, 2),
            "level_dbfs": round(acoustic.level_dbfs, 2),
            "participant_only": float(participant_only),
        },
    }
    if speech_s < job.min_speech_seconds:
        reason = f"only {speech_s:.1f} s of speech; at least {job.min_speech_seconds:.0f} s are needed"
        warnings.append("audio was not used: " + reason)
        return None, {"used": False, "reason": reason, **report}
    track = AudioTrack(frames=acoustic.frames, speech=acoustic.speech, snr_db=acoustic.snr_db)
    return track, {"used": True, **report}


def _text_branch(
    utterances: list[Utterance], media_duration: float | None, features: FeatureSpec, job: ExtractionJob
) -> tuple[TextTrack, dict]:
    texts = [u.text for u in utterances]
    embeddings = text_encoder(text_encoder_dir(job.model_store, features)).embed(texts)
    starts = np.array([u.start_s if u.start_s is not None else np.nan for u in utterances], dtype=np.float64)
    timed = bool(np.isfinite(starts).all())
    if not timed:
        if media_duration:
            # untimed text beside media: spread the utterances evenly over the recording
            starts = np.linspace(0.0, media_duration, len(texts), endpoint=False)
        else:
            # text alone: a full window's worth of utterances per window
            spacing = features.windows.length_s / features.text.max_utterances_per_window
            starts = np.arange(len(texts)) * spacing
    words = np.array([word_count(t) for t in texts], dtype=np.int64)
    track = TextTrack(embeddings=embeddings, start_s=starts, word_counts=words)
    report = {
        "used": True,
        "duration_s": None,
        "quality": {
            "utterances": float(len(texts)),
            "words": float(words.sum()),
            "mean_words": round(float(words.mean()), 2),
            "timestamped": float(timed),
        },
    }
    return track, report
