"""One interview's uploads -> model windows and a per-modality report (runs in a worker).

The worker side of the pipeline: probe -> transcript -> features (visual, audio, text) ->
windows. CPU-bound and self-contained: the job carries the uploads' paths, the manifest's
feature parameters and the limits; the models arrive loaded (``ExtractionModels``). So it
runs in a worker process, never on the event loop, and a test can call it directly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.answer.schema import (
    Candidate,
    ModalityReport,
    RecognisedSegment,
    Selection,
    SpeakersReport,
    TranscriptCheckReport,
)
from app.config import Settings
from app.contract import MODALITIES, AudioSpec, FeatureSpec
from app.errors import (
    ConflictingInputError,
    CorruptMediaError,
    NoUsableInputError,
    TranscriptInvalidError,
    UnsupportedMediaError,
)
from app.features import audio as audio_features
from app.features import growing_audio
from app.features.text import TextEncoder
from app.features.transcript import SpeakerSelection, TranscriptError, Utterance, parse_transcript, word_count
from app.features.transcript import language as transcript_language
from app.features.visual import space as visual_space
from app.features.visual.models import FaceModels
from app.features.visual.sampling import VisualDecodeError
from app.features.visual.tracking import FaceCensus, TrackedSegment, TrackerState, VisualExtractor, VisualResult
from app.model_store import text_encoder_dir
from app.probe import MediaInfo, probe
from app.runtime import RuntimeConfig
from app.speech import hearing
from app.speech.agreement import agreement, judge, normalised_words
from app.speech.live import LiveWords, hear_new_speech
from app.speech.sources import participant_source
from app.speech.voices import SAMPLE_RATE as SPEECH_RATE
from app.windows import AudioTrack, TextTrack, VisualTrack, WindowBatch, build_windows


@dataclass(frozen=True)
class InputLimits:
    """What extraction enforces on one interview; made from the settings, the one source."""

    max_media_seconds: float
    min_face_seconds: float
    min_face_landmark_motion: float
    min_face_pose_motion_deg: float
    min_speech_seconds: float
    min_transcript_words: int
    max_transcript_bytes: int
    transcript_check_seconds: float
    transcript_check_min_share: float
    max_frame_pixels: int
    max_streams: int

    @classmethod
    def from_settings(cls, settings: Settings) -> InputLimits:
        return cls(
            max_media_seconds=settings.max_media_seconds,
            min_face_seconds=settings.min_face_seconds,
            min_face_landmark_motion=settings.min_face_landmark_motion,
            min_face_pose_motion_deg=settings.min_face_pose_motion_deg,
            min_speech_seconds=settings.min_speech_seconds,
            min_transcript_words=settings.min_transcript_words,
            max_transcript_bytes=settings.max_transcript_bytes,
            transcript_check_seconds=settings.transcript_check_seconds,
            transcript_check_min_share=settings.transcript_check_min_share,
            max_frame_pixels=settings.max_frame_pixels,
            max_streams=settings.max_streams,
        )


@dataclass(frozen=True)
class ExtractionJob:
    """One interview as the worker gets it: where its uploads lie, and what to make of them."""

    features: FeatureSpec
    limits: InputLimits
    video: Path | None = None
    audio: Path | None = None
    transcript: bytes | None = None
    transcript_hint: str | None = None
    transcript_content_type: str | None = None
    participant_speaker: str | None = None
    participant_track: int | None = None  # 0-based among the recording's audio tracks
    participant_channel: int | None = None  # 0 left, 1 right
    speaker_separation: bool = True  # the settings' switches for the speech stage's steps
    speech_recognition: bool = True
    return_transcript: bool = False  # the recognised words go back to the caller in the answer
    # why a sent transcript is not checked against the recording (a setting, the request); None: it is
    transcript_check_off: str | None = None
    visual_split: int = 1  # segments of the video analysed in parallel (the server was idle when it came)
    beside_visual: bool = False  # the audio and text stages run while the visual one does (idle server too)
    # a live session's video so far, already tracked as it came (LiveVideoJob results, in
    # order): the visual branch joins them instead of decoding a video file, or, with the
    # recorded ``video`` (the final answer), tracks only the ticks after them
    live_video: tuple[TrackedSegment, ...] = ()
    live_video_s: float = 0.0  # the session time those segments reach
    # a running estimate of a live session: the cache of its WAV's final log-mel frames, which
    # the audio branch reads and extends instead of decoding the whole call again
    # (app/features/growing_audio.py)
    live_audio_cache: Path | None = None


# what the visual report's format says of a live session's tracked video
LIVE_VIDEO_FORMAT = "live JPEG frames"


@dataclass(frozen=True)
class LiveVideoJob:
    """Pictures of a live session to track, one per tick from ``first_tick``.

    ``pictures`` holds a JPEG (or None: no picture for that tick) per tick; a picture that
    serves several ticks is the same bytes object each time, so it is decoded once and the
    tracker treats it as one frame, as it does a decoded video's. ``resume``: where the
    previous part left the tracker (None for the first part).
    """

    features: FeatureSpec
    first_tick: int
    pictures: tuple[bytes | None, ...]
    resume: TrackerState | None = None


# audio outside this range is not speech the pipeline can use (or a forged header)
SAMPLE_RATES_HZ = (4000, 768_000)
# frames smaller than this cannot hold a face the detector finds (its input is 128 px)
MIN_FRAME_SIDE = 32


@dataclass
class Extracted:
    """The worker's answer: the model windows and a validated report per modality."""

    windows: WindowBatch
    reports: dict[str, ModalityReport]
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    speakers: SpeakersReport = field(default_factory=lambda: SpeakersReport(separated=False, reason="no audio given"))

    def __post_init__(self) -> None:
        if set(self.reports) != set(MODALITIES):
            raise ValueError(f"reports must name exactly {MODALITIES}, not {sorted(self.reports)}")


@contextmanager
def _stage(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's wall time to ``timings[name]`` (ms)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + 1000 * (time.perf_counter() - start)


@dataclass(frozen=True)
class ExtractionModels:
    """The models extraction runs, loaded once per worker process and reused across its jobs."""

    text_encoder: TextEncoder
    face_models: FaceModels
    speech: hearing.SpeechModels = field(default_factory=lambda: hearing.SpeechModels(None, None))
    # more sets of the face models, for the other segments of a video analysed in parallel
    partner_face_models: tuple[FaceModels, ...] = ()

    @classmethod
    def load(cls, store: Path, features: FeatureSpec, config: RuntimeConfig) -> ExtractionModels:
        return cls(
            text_encoder=TextEncoder(text_encoder_dir(store, features), config, max_tokens=features.text.max_tokens),
            face_models=FaceModels(store, config),
            speech=hearing.SpeechModels.load(store, config),
            partner_face_models=tuple(FaceModels(store, config) for _ in range(config.face_model_sets - 1)),
        )

    def warm(self) -> None:
        """One run of each model and librosa's numba kernels compiled, before the first job."""
        self.text_encoder.embed(["warm up"])
        transcript_language.warm()
        spec = AudioSpec()
        audio_features.audio_features(np.zeros(spec.sample_rate, np.float32), spec)
        self.speech.warm()

    def providers(self) -> dict[str, list[str]]:
        """The providers each model family's sessions really run on."""
        return {
            "text_encoder": list(self.text_encoder.providers),
            "face_models": list(self.face_models.providers),
            **self.speech.providers(),
        }


def _absent(reason: str, **report: Any) -> ModalityReport:
    return ModalityReport(used=False, reason=reason, **report)


def extract(job: ExtractionJob, models: ExtractionModels) -> Extracted:
    """The uploads of ``job`` -> windows and reports; a ServiceError names what is wrong with which input."""
    features, limits = job.features, job.limits
    timings: dict[str, float] = {}
    warnings: list[str] = []
    reports = {
        "visual": _absent("no video given"),
        "audio": _absent("no audio given"),
        "text": _absent("no transcript given"),
    }

    # probe: what the uploads hold, before decoding anything
    with _stage(timings, "probe"):
        video_info = probe(job.video, "video", limits.max_streams) if job.video is not None else None
        audio_info = probe(job.audio, "audio", limits.max_streams) if job.audio is not None else None
    if audio_info is not None and not audio_info.has_audio:
        raise UnsupportedMediaError("the audio upload holds no audio stream")
    if audio_info is not None and not _usable_rate(audio_info.sample_rate):
        raise UnsupportedMediaError(f"the audio upload's sample rate is outside {SAMPLE_RATES_HZ} Hz")
    if video_info is not None and not video_info.has_video and not video_info.has_audio:
        raise UnsupportedMediaError("the video upload holds neither video nor audio")

    # transcript: participant utterances (and speaker turns for the audio)
    utterances: list[Utterance] = []  # the participant's, for the text branch
    turns: list[tuple[float, float]] = []  # the participant's timed turns, for the audio branch
    other_turns: list[tuple[float, float]] = []  # the other speakers', to tell whose track is whose
    text_details: dict[str, Any] = {}  # the transcript's dialect, encoding and speaker choice, on inputs.text
    speaker_choice: Selection | None = None
    transcript = None
    check: TranscriptCheckReport | None = None  # does the sent transcript say what the recording says
    unlabelled: str | None = None  # a transcript without speakers: said unless separation labels it
    audio_expected = audio_info is not None or (video_info is not None and video_info.has_audio)
    if job.transcript is not None:
        with _stage(timings, "transcript"):
            try:
                transcript = parse_transcript(
                    job.transcript, job.transcript_hint, job.transcript_content_type, limits.max_transcript_bytes
                )
                # a timed transcript without labels is labelled by speaker separation: the option
                # then names one of its voices ("speaker 2"), not a label the transcript lacks
                defer = (
                    not transcript.speakers and transcript.has_timestamps and audio_expected and job.speaker_separation
                )
                option = None if defer else job.participant_speaker
                selection = transcript.select_participant(option)
            except TranscriptError as exc:
                raise TranscriptInvalidError(str(exc)) from exc
            utterances = transcript.utterances_of(selection)
            spoken = transcript_language.identify([u.text for u in utterances]) if utterances else None
        text_details = {"format": transcript.dialect, "encoding": transcript.encoding}
        if selection is not None:
            speaker_choice = _speaker_choice(selection)
            text_details["selections"] = [speaker_choice]
            if selection.warning:
                warnings.append(selection.warning)
        if transcript.speakers and transcript.has_timestamps:
            turns = [(u.start_s, u.end_s) for u in utterances if u.start_s is not None and u.end_s is not None]
        if not transcript.utterances:
            reports["text"] = _absent("the transcript is empty")
            warnings.append("the transcript is empty and was treated as absent")
        elif not utterances:
            reports["text"] = _absent("the transcript has no participant utterances")
            warnings.append("no utterances of the participant were found in the transcript")
        elif spoken is not None and spoken.clearly_not_english:
            reason = f"the transcript is in {spoken.name}, the text model reads English"
            reports["text"] = _absent(reason)
            warnings.append("the transcript was not used: " + reason)
            warnings.append(
                "the audio and visual models were trained on English-speaking interviews; their estimate for an "
                f"interview in {spoken.name} is less certain than the interval says"
            )
            utterances = []
        else:
            unlabelled = transcript.unlabelled_warning()
        if turns:
            mine = {id(u) for u in utterances}
            other_turns = [
                (u.start_s, u.end_s)
                for u in transcript.utterances
                if id(u) not in mine and u.start_s is not None and u.end_s is not None
            ]

    # consistency: uploads that cannot be the same session
    media_s = _check_durations(video_info, audio_info, warnings)
    if utterances and media_s:
        reason = _transcript_past_media(transcript.utterances, media_s, warnings)
        if reason:
            utterances, turns, other_turns = [], [], []
            reports["text"] = _absent(reason)

    # visual: faces in the video (after the cheap checks above, so bad text fails fast). On an
    # idle server the audio and text stages run beside it, on the share of the cores that its
    # segments' GIL-bound tracking leaves free.
    visual: _VisualStage | None = None
    visual_warnings_at = len(warnings)  # its warnings keep their place, before the audio's
    if video_info is not None:
        skip = _unusable_frames(video_info, limits.max_frame_pixels)
        if skip:
            reports["visual"] = _absent(skip)
            reports["visual"].format = media_format(video_info)
            warnings.append(skip + "; the visual branch was not used")
        else:
            visual = _VisualStage(job, models, video_info, beside=job.beside_visual)
    elif job.live_video:
        visual = _VisualStage(job, models, None, beside=job.beside_visual)

    with visual or nullcontext():
        # audio: a separate audio upload wins over the video's own track
        audio_track, media_duration = None, None
        recognised: hearing.Heard | None = None
        not_heard: str | None = None  # why speech recognition did not run on decoded audio
        speakers_report = SpeakersReport(separated=False, reason="no audio given")
        source, path = None, None
        if audio_info is not None:
            source, path = "audio upload", job.audio
            if video_info is not None and video_info.has_audio:
                warnings.append(
                    "both a video and an audio file were given; the audio file was used for the audio branch"
                )
        elif video_info is not None and video_info.has_audio and not _usable_rate(video_info.sample_rate):
            reports["audio"] = _absent("the video's audio track has an unusable sample rate")
            warnings.append("the video's audio track has an unusable sample rate; audio was not used")
        elif video_info is not None and video_info.has_audio:
            source, path = "video audio track", job.video
        elif video_info is not None:
            reports["audio"] = _absent("the video has no audio track")
        if path is not None and source == "audio upload" and job.live_audio_cache is not None:
            assert audio_info is not None
            with _stage(timings, "audio"):
                grown = growing_audio.update(
                    path,
                    job.live_audio_cache,
                    features.audio,
                    round(limits.max_media_seconds * features.audio.sample_rate),
                )
                audio_track, report = _growing_audio_branch(grown, turns, features, limits, warnings)
            media_duration = grown.n_samples / features.audio.sample_rate
            report.source, report.format = source, media_format(audio_info)
            if speaker_choice is not None and report.quality.get("participant_only"):
                report.selections = [speaker_choice]
            reports["audio"] = report
            speakers_report = SpeakersReport(separated=False, reason=RUNNING_ESTIMATE_SPEAKERS)
            not_heard = RUNNING_ESTIMATE_SPEECH
        elif path is not None:
            info = audio_info if source == "audio upload" else video_info
            assert info is not None and source is not None
            with _stage(timings, "decode"):
                tracks = _decode_tracks(path, info, source, features, limits, warnings)
            if tracks:
                option = _track_option(job.participant_track, info, tracks)
                with _stage(timings, "speech"):
                    choice = participant_source(
                        tracks, features.audio, option, job.participant_channel, turns, other_turns
                    )
                warnings.extend(choice.warnings)
                signal = choice.source.signal
                with _stage(timings, "speech"):
                    heard = _speech_stage(job, transcript, signal, models.speech)
                timings.update(heard.timings_ms)
                warnings.extend(heard.warnings)
                speakers_report = _speakers_report(heard)
                not_heard = heard.recognition_skipped
                if heard.several_speakers:
                    # the patient's voice only, as an uploaded transcript's turns would give it
                    turns, other_turns = heard.turns, heard.other_turns
                    speaker_choice = heard.selection
                if transcript is not None and transcript.utterances and not transcript.speakers and utterances:
                    if heard.separated and transcript.has_timestamps and heard.speakers:
                        utterances, dropped = _labelled_participant(transcript.utterances, heard)
                        unlabelled = None
                        if heard.selection is not None:
                            text_details["selections"] = [heard.selection]
                        if dropped:
                            warnings.append(
                                f"{dropped} transcript lines fell in no speaker's turn and were not used as the "
                                "patient's"
                            )
                    elif heard.separated and heard.speakers > 1:
                        unlabelled = (
                            "the transcript has no speaker labels and no times, so speaker separation could not tell "
                            "whose lines are whose: every line was taken as the participant's (the audio kept the "
                            "patient's voice only)"
                        )
                if transcript is not None and utterances:
                    with _stage(timings, "transcript_check"):
                        check, left_out = _transcript_check(job, transcript, signal, heard, turns, models.speech)
                    if left_out is not None:
                        reports["text"] = _absent(left_out)
                        warnings.append("the transcript was not used: " + left_out)
                        utterances = []
                        if turns and not heard.several_speakers:
                            # its turns are not this recording's either
                            turns, other_turns = [], []
                            warnings.append(
                                "the audio branch used all the speech in the recording: the transcript's turns "
                                "were not used to tell the patient's apart"
                            )
                if heard.recognised:
                    utterances, text_reason = _recognised_utterances(heard, limits)
                    recognised = heard
                    if text_reason:
                        reports["text"] = _absent(text_reason)
                        if not heard.interviewer:  # that reason is one warning for both branches
                            warnings.append("the recognised words were not used: " + text_reason)
                media_duration = signal.shape[0] / features.audio.sample_rate
                if info.duration_s and info.duration_s > limits.max_media_seconds:
                    warnings.append(f"the recording was cut at {limits.max_media_seconds:.0f} s")
                with _stage(timings, "audio"):
                    if heard.interviewer:
                        audio_track, report = None, _absent(heard.interviewer)
                        warnings.append(heard.interviewer)
                    else:
                        audio_track, report = _audio_branch(signal, turns, features, limits, warnings)
                report.source = source if not choice.selections else f"{source}, {choice.source.name}"
                report.format = media_format(info)
                report.selections = list(choice.selections)
                if speaker_choice is not None and report.quality.get("participant_only"):
                    report.selections.append(speaker_choice)  # the audio kept only this speaker's turns
                reports["audio"] = report
            elif source == "video audio track":
                reports["audio"] = _absent("the video's audio track could not be decoded")
                warnings.append("the video's audio track could not be decoded; audio was not used")
            if not tracks:
                speakers_report = SpeakersReport(separated=False, reason="no audio track could be decoded")
        if unlabelled:
            warnings.append(unlabelled)
        if job.transcript is None and recognised is None:
            why = "no audio to hear the patient's words in" if not_heard is None else not_heard
            reports["text"] = _absent(f"no transcript given, and {why}")
        if (
            job.participant_speaker is not None
            and not speakers_report.separated
            and (transcript is None or not transcript.speakers)
        ):
            warnings.append(
                "participant_speaker was not used: no speaker labels or separated voices to match it against"
            )

        # text: the participant's utterances through the sentence encoder
        text_track = None
        words = sum(word_count(u.text) for u in utterances)
        if utterances and words < limits.min_transcript_words:
            heard_by = "speech recognition heard " if recognised is not None else ""
            reason = (
                f"{heard_by}only {words} words from the participant; at least {limits.min_transcript_words} are needed"
            )
            reports["text"] = _absent(reason)
            what = "the recognised words were" if recognised is not None else "the transcript was"
            warnings.append(f"{what} not used: " + reason)
        elif utterances:
            with _stage(timings, "text"):
                text_track, reports["text"] = _text_branch(utterances, media_duration, features, models.text_encoder)
            if recognised is not None:
                _describe_recognition(reports["text"], recognised, job.return_transcript)

    visual_track = None
    if visual is not None:
        visual_track, reports["visual"] = visual.track, visual.report
        warnings[visual_warnings_at:visual_warnings_at] = visual.warnings
        timings["visual"] = visual.elapsed_ms

    if text_details:
        reports["text"] = reports["text"].model_copy(update=text_details)
    if check is None and job.transcript is not None and not audio_expected and reports["text"].used:
        check = TranscriptCheckReport(ran=False, reason="no recording came with the transcript to check it against")
    reports["text"].check = check
    if recognised is not None and not reports["text"].used:
        reports["text"].source = "speech recognition"
    if visual_track is None and audio_track is None and text_track is None:
        reasons = "; ".join(f"{m}: {r.reason}" for m, r in reports.items() if not r.used)
        # each modality's reason also as a member of the problem, for clients that act on it
        why = {m: r.reason for m, r in reports.items() if not r.used}
        raise NoUsableInputError(f"no modality is usable ({reasons})", reasons=why)
    with _stage(timings, "windows"):
        windows = build_windows(features, visual=visual_track, audio=audio_track, text=text_track)
    for k, name in enumerate(MODALITIES):
        if reports[name].used:
            reports[name].windows = int(windows.modality_mask[:, k].sum())
    return Extracted(windows=windows, reports=reports, warnings=warnings, timings_ms=timings, speakers=speakers_report)


# uploads whose lengths differ by more than this share are warned about; by more than
# MISMATCH_REFUSE_RATIO, refused: they are recordings of different sessions
MISMATCH_WARN_SHARE = 0.10
MISMATCH_REFUSE_RATIO = 2.0
# a transcript running this far past the media's end does not belong to it: not used
TRANSCRIPT_PAST_MEDIA_EXCLUDE = 0.5


def _check_durations(video: MediaInfo | None, audio: MediaInfo | None, warnings: list[str]) -> float | None:
    """The longest upload's duration; a warning or a refusal when video and audio disagree."""
    lengths = [info.duration_s for info in (video, audio) if info is not None and info.duration_s]
    if video is not None and audio is not None and video.duration_s and audio.duration_s:
        v, a = video.duration_s, audio.duration_s
        if max(v, a) > MISMATCH_REFUSE_RATIO * min(v, a):
            raise ConflictingInputError(
                f"the video lasts {v:.0f} s and the audio {a:.0f} s: they are not recordings of the same interview"
            )
        if abs(v - a) > MISMATCH_WARN_SHARE * max(v, a):
            warnings.append(
                f"the video ({v:.0f} s) and the audio ({a:.0f} s) differ in length by more than "
                f"{MISMATCH_WARN_SHARE:.0%}; check that they are the same session"
            )
    return max(lengths) if lengths else None


def _transcript_past_media(utterances: list[Utterance], media_s: float, warnings: list[str]) -> str | None:
    """Why the transcript is not used (it runs far past the media), or None; a warning when it
    runs past by more than MISMATCH_WARN_SHARE."""
    ends = [u.end_s if u.end_s is not None else u.start_s for u in utterances]
    times = [t for t in ends if t is not None]
    if not times:
        return None
    end = max(times)
    if end > (1 + TRANSCRIPT_PAST_MEDIA_EXCLUDE) * media_s:
        reason = f"the transcript runs to {end:.0f} s but the media last {media_s:.0f} s: it is not this recording's"
        warnings.append("the transcript was not used: " + reason)
        return reason
    if end > (1 + MISMATCH_WARN_SHARE) * media_s:
        warnings.append(
            f"the transcript runs to {end:.0f} s, more than {MISMATCH_WARN_SHARE:.0%} past the media's "
            f"{media_s:.0f} s; check that it belongs to this recording"
        )
    return None


def media_format(info: MediaInfo) -> str:
    """'avi (mpeg4, mp3float)': the container and the codecs decoded, as the answer reports them."""
    codecs = [c for c in (info.video_codec, info.audio_codec) if c]
    return f"{info.container.split(',')[0]} ({', '.join(codecs)})" if codecs else info.container.split(",")[0]


def _decode_tracks(
    path: Path, info: MediaInfo, source: str, features: FeatureSpec, limits: InputLimits, warnings: list[str]
) -> list[tuple[str, np.ndarray]]:
    """Every accepted audio track of ``path`` as (name, (channels, samples)); damage is warned
    about, a track that does not decode is left out (an audio upload with none is refused)."""
    decoded: list[tuple[str, np.ndarray]] = []
    several = len(info.audio_tracks) > 1
    for track in info.audio_tracks:
        label = f"audio {track.name}" if several else "audio"
        if track.codec is None:
            warnings.append(f"{label} has a codec that is not accepted; it was not analysed")
            continue
        if not _usable_rate(track.sample_rate):
            warnings.append(f"{label} has an unusable sample rate; it was not analysed")
            continue
        damage = audio_features.DecodeReport()
        try:
            channels = audio_features.decode_audio(
                path, features.audio.sample_rate, limits.max_media_seconds, report=damage, track=track.index, mix=False
            )
        except audio_features.AudioDecodeError as exc:
            if source == "audio upload" and not several:
                raise CorruptMediaError(f"the audio upload could not be decoded: {exc}") from exc
            warnings.append(f"{label} could not be decoded; it was not analysed")
            continue
        where = f" in {track.name}" if several else ""
        if damage.skipped_packets:
            warnings.append(f"{damage.skipped_packets} damaged audio packets were skipped{where}")
        if damage.truncated:
            warnings.append(f"the audio breaks off in damaged data{where}; the part before it was used")
        decoded.append((track.name, channels))
    if not decoded and source == "audio upload":
        raise CorruptMediaError("the audio upload holds no audio track that could be decoded")
    return decoded


def _track_option(option: int | None, info: MediaInfo, tracks: list[tuple[str, np.ndarray]]) -> int | None:
    """The client's participant_track (0-based in the file) as a position among the decoded tracks."""
    if option is None:
        return None
    if not 0 <= option < len(info.audio_tracks):
        raise ConflictingInputError(
            f"participant_track is {option + 1}, but the recording has {len(info.audio_tracks)} audio tracks"
        )
    names = [name for name, _ in tracks]
    wanted = info.audio_tracks[option].name
    if wanted not in names:
        raise UnsupportedMediaError(f"participant_track {option + 1} cannot be decoded (see the accepted codecs)")
    return names.index(wanted)


def _speaker_choice(selection: SpeakerSelection) -> Selection:
    """The transcript's speaker selection as the answer states it (labels as the transcript writes them)."""
    return Selection(
        kind="speaker",
        rule=selection.rule,
        confident=selection.confident,
        candidates=[
            Candidate(name=s.label, chosen=s.label in selection.chosen, seconds=s.seconds, words=s.words)
            for s in selection.speakers
        ],
    )


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


class _VisualStage:
    """The visual branch of one job, run in place or in a thread beside the stages after it.

    Entered, it runs the branch (in place) or starts it (``beside``); its exit waits for the
    thread, so a worker never takes its next job while the face models are still busy, and
    raises the branch's error before any error of the stages beside it, as the branch, run
    first, would have."""

    def __init__(self, job: ExtractionJob, models: ExtractionModels, info: MediaInfo | None, beside: bool) -> None:
        self._job, self._models, self._info, self._beside = job, models, info, beside
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future[None] | None = None
        self.track: VisualTrack | None = None
        self.report = _absent("the visual branch did not run")
        self.warnings: list[str] = []
        self.elapsed_ms = 0.0

    def __enter__(self) -> _VisualStage:
        if not self._beside:
            self._run()
            return self
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="visual-stage")
        self._future = self._pool.submit(self._run)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is None or self._future is None:
            return
        try:
            self._future.result()  # the branch's own error, if it raised one
        finally:
            self._pool.shutdown()

    def _run(self) -> None:
        start = time.perf_counter()
        try:
            if self._info is None:  # a live session's video, tracked as it came
                self.track, self.report = _live_visual_branch(self._job, self._models.face_models, self.warnings)
                self.report.format = LIVE_VIDEO_FORMAT
                return
            partners = self._models.partner_face_models[: max(0, self._job.visual_split - 1)]
            self.track, self.report = _visual_branch(self._job, self._models.face_models, self.warnings, partners)
            self.report.format = media_format(self._info)
        finally:
            self.elapsed_ms = 1000 * (time.perf_counter() - start)


def _visual_branch(
    job: ExtractionJob, face_models: FaceModels, warnings: list[str], partners: Sequence[FaceModels] = ()
) -> tuple[VisualTrack | None, ModalityReport]:
    assert job.video is not None
    extractor = VisualExtractor(face_models, job.features.visual)
    helpers = [VisualExtractor(models, job.features.visual) for models in partners]
    try:
        if job.live_video:  # a live session's final answer: the tracked parts, then the rest
            result = extractor.extract_rest(job.video, job.live_video, job.limits.max_media_seconds)
        else:
            result = extractor.extract(job.video, job.limits.max_media_seconds, partners=helpers)
    except VisualDecodeError:
        warnings.append("the video's frames could not be decoded; the visual branch was not used")
        return None, _absent("the video's frames could not be decoded")
    return _visual_evidence(result, job, warnings)


def _live_visual_branch(
    job: ExtractionJob, face_models: FaceModels, warnings: list[str]
) -> tuple[VisualTrack | None, ModalityReport]:
    extractor = VisualExtractor(face_models, job.features.visual)
    result = extractor.join(job.live_video, job.live_video_s)
    return _visual_evidence(result, job, warnings)


def _visual_evidence(
    result: VisualResult, job: ExtractionJob, warnings: list[str]
) -> tuple[VisualTrack | None, ModalityReport]:
    """The visual track of ``result`` when it is evidence (enough face, a face that moves), with its report."""
    warnings.extend(result.notes)
    limits = job.limits
    face_seconds = float(result.valid.sum()) / job.features.visual.rate_hz
    landmark_motion, pose_motion = visual_space.face_motion(result.frames, result.valid)
    quality = {
        **result.quality,
        "face_seconds": face_seconds,
        "landmark_motion": landmark_motion,
        "pose_motion_deg": pose_motion,
    }
    report: dict[str, Any] = {
        "duration_s": round(result.duration_s, 2),
        "quality": {k: round(float(v), 4) for k, v in quality.items()},
    }
    if result.census is not None and result.census.max_faces > 1:
        report["selections"] = [_face_selection(result.census, result.duration_s)]
    if not result.valid.any():
        warnings.append("no face was found in the video; the visual branch was not used")
        return None, _absent("no face was found in the video", **report)
    if face_seconds < limits.min_face_seconds:
        reason = f"only {face_seconds:.1f} s of face were found; at least {limits.min_face_seconds:.0f} s are needed"
        warnings.append("the visual branch was not used: " + reason)
        return None, _absent(reason, **report)
    if landmark_motion < limits.min_face_landmark_motion and pose_motion < limits.min_face_pose_motion_deg:
        reason = "the face does not move (a still picture is not evidence)"
        warnings.append("the visual branch was not used: " + reason)
        return None, _absent(reason, **report)
    frames = visual_space.profile_frames(result.frames, job.features.visual)
    track = VisualTrack(frames=frames, valid=result.valid, confidence=result.confidence)
    return track, ModalityReport(used=True, source="video", **report)


def track_live_video(job: LiveVideoJob, face_models: FaceModels) -> TrackedSegment:
    """A live session's next pictures through the face tracker: the segment ``join`` adds to the others.

    The JPEGs are decoded by FFmpeg's decoder and converted as the video sampler converts a
    decoded MJPEG file's frames, so a tick gets the same picture here as in the final answer.
    """
    import av

    decoder = av.CodecContext.create("mjpeg", "r")
    decoded: dict[int, np.ndarray] = {}

    def picture(jpeg: bytes | None) -> np.ndarray | None:
        if jpeg is None:
            return None
        if id(jpeg) not in decoded:
            try:
                frames = decoder.decode(av.Packet(jpeg))
            except av.error.FFmpegError:
                frames = []
            decoded.clear()  # one picture is held: the tracker compares each tick with the last
            decoded[id(jpeg)] = frames[0].to_ndarray(format="rgb24") if frames else None
        return decoded[id(jpeg)]

    extractor = VisualExtractor(face_models, job.features.visual)
    return extractor.track((picture(p) for p in job.pictures), job.first_tick, resume=job.resume)


@dataclass(frozen=True)
class LiveSpeechJob:
    """Samples [first, end) of a live session's WAV (16-bit mono 16 kHz, in its private folder,
    still growing) for speech recognition (``app.speech.live``); ``last``: the session is over."""

    audio: Path
    first_sample: int
    end_sample: int
    last: bool = False


def hear_live_speech(job: LiveSpeechJob, speech: hearing.SpeechModels) -> LiveWords:
    import wave

    if speech.recogniser is None:
        raise RuntimeError(hearing.NO_RECOGNISER)
    with wave.open(str(job.audio), "rb") as wav:  # the header is kept valid as the file grows
        wav.setpos(job.first_sample)
        pcm = wav.readframes(job.end_sample - job.first_sample)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    start_s = job.first_sample / SPEECH_RATE
    return hear_new_speech(samples, start_s, speech.recogniser, job.last, voice_encoder=speech.voice_encoder)


# what a worker does: an interview's extraction, or a live session's next pictures tracked or
# next speech recognised
WorkerJob = ExtractionJob | LiveVideoJob | LiveSpeechJob
WorkerResult = Extracted | TrackedSegment | LiveWords


def perform(job: WorkerJob, models: ExtractionModels) -> WorkerResult:
    """The worker's entry: the job's kind picks the work."""
    if isinstance(job, LiveVideoJob):
        return track_live_video(job, models.face_models)
    if isinstance(job, LiveSpeechJob):
        return hear_live_speech(job, models.speech)
    return extract(job, models)


# at most this many faces are named as candidates (a crowd adds nothing to the choice)
MAX_FACE_CANDIDATES = 5


def _face_selection(census: FaceCensus, duration_s: float) -> Selection:
    """Which of several faces was analysed, by which rule; per-pass ranks, not persons (see FaceCensus)."""
    chosen = census.usual_rank
    faces = min(census.max_faces, MAX_FACE_CANDIDATES)
    candidates = [
        Candidate(
            name=f"face {k + 1}" + (" (largest, most central)" if k == 0 else ""),
            chosen=k == chosen,
            seconds=round(min(census.seconds_with(k + 1), duration_s), 1),
        )
        for k in range(faces)
    ]
    return Selection(
        kind="face",
        rule="the largest, most central face when a face is found, then that face followed from frame to frame",
        # weak when another face came close to the analysed one, or the analysed face changed person
        confident=census.close_calls == 0 and not census.identity_switches_s,
        candidates=candidates,
    )


def _audio_branch(
    signal: np.ndarray,
    turns: list[tuple[float, float]],
    features: FeatureSpec,
    limits: InputLimits,
    warnings: list[str],
) -> tuple[AudioTrack | None, ModalityReport]:
    spec = features.audio
    participant_only = False
    spans: list[tuple[float, float]] = []
    if turns:
        kept = audio_features.keep_segments(signal, spec.sample_rate, turns)
        if kept.size >= spec.sample_rate:
            spans = audio_features.kept_spans(signal.shape[0], spec.sample_rate, turns)
            signal, participant_only = kept, True
        else:
            warnings.append(TURNS_OUTSIDE_AUDIO)
    acoustic = audio_features.audio_features(signal, spec)
    bandwidth = audio_features.speech_bandwidth_hz(signal, spec.sample_rate)
    # each frame at the time it was spoken, so windows follow the interview's clock
    times = audio_features.frame_times(acoustic.frames.shape[0], spec.rate_hz, spans) if spans else None
    return _acoustic_track(acoustic, times, bandwidth, participant_only, spec, limits, warnings)


def _growing_audio_branch(
    grown: growing_audio.GrownAudio,
    turns: list[tuple[float, float]],
    features: FeatureSpec,
    limits: InputLimits,
    warnings: list[str],
) -> tuple[AudioTrack | None, ModalityReport]:
    """``_audio_branch`` for a running estimate, on the frames of the call so far."""
    spec = features.audio
    acoustic, times = growing_audio.grown_features(grown, spec, turns)
    if turns and times is None:
        warnings.append(TURNS_OUTSIDE_AUDIO)
    bandwidth = audio_features.speech_bandwidth_hz(grown.tail, spec.sample_rate)
    return _acoustic_track(acoustic, times, bandwidth, times is not None, spec, limits, warnings)


TURNS_OUTSIDE_AUDIO = "the transcript's participant turns do not overlap the audio; all of the audio was used"
# what a running estimate of a live session says of the steps only its final answer runs
RUNNING_ESTIMATE_SPEAKERS = "speaker separation runs for the final answer"
RUNNING_ESTIMATE_SPEECH = "the words are recognised live, or for the final answer"


def _acoustic_track(
    acoustic: audio_features.AudioFeatures,
    times: np.ndarray | None,
    bandwidth: float,
    participant_only: bool,
    spec: AudioSpec,
    limits: InputLimits,
    warnings: list[str],
) -> tuple[AudioTrack | None, ModalityReport]:
    """The audio report, and the track unless there is too little speech."""
    speech_s = float(acoustic.speech.sum()) / spec.rate_hz
    if 0 < bandwidth < audio_features.NARROWBAND_MAX_HZ:
        warnings.append(
            f"the audio is telephone-band (speech carried up to about {bandwidth:.0f} Hz); the model was trained "
            "on wideband speech, so the audio estimate may be off"
        )
    report = {
        "duration_s": round(acoustic.duration_s, 2),
        "quality": {
            "speech_ratio": round(acoustic.speech_ratio, 4),
            "speech_seconds": round(speech_s, 2),
            "snr_db": round(acoustic.snr_db, 2),
            "level_dbfs": round(acoustic.level_dbfs, 2),
            "bandwidth_hz": round(bandwidth, 1),
            "participant_only": float(participant_only),
        },
    }
    if speech_s < limits.min_speech_seconds:
        reason = f"only {speech_s:.1f} s of speech; at least {limits.min_speech_seconds:.0f} s are needed"
        warnings.append("audio was not used: " + reason)
        return None, _absent(reason, **report)
    track = AudioTrack(frames=acoustic.frames, speech=acoustic.speech, snr_db=acoustic.snr_db, times_s=times)
    return track, ModalityReport(used=True, **report)


def _text_branch(
    utterances: list[Utterance], media_duration: float | None, features: FeatureSpec, encoder: TextEncoder
) -> tuple[TextTrack, ModalityReport]:
    texts = [u.text for u in utterances]
    embeddings = encoder.embed(texts)
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
    report = ModalityReport(
        used=True,
        duration_s=None,
        quality={
            "utterances": float(len(texts)),
            "words": float(words.sum()),
            "mean_words": round(float(words.mean()), 2),
            "timestamped": float(timed),
        },
    )
    return track, report


# -- the speech stage's part in extraction ---------------------------------------------------


def _speech_stage(
    job: ExtractionJob, transcript: Any, signal: np.ndarray, models: hearing.SpeechModels
) -> hearing.Heard:
    """Speaker separation and speech recognition on the participant's source, each unless a
    setting turns it off or the transcript already gives what it would find."""
    separation_skipped = None
    if not job.speaker_separation:
        separation_skipped = "speaker separation is off (setting speaker_separation)"
    elif transcript is not None and transcript.speakers and transcript.has_timestamps:
        separation_skipped = "the transcript labels and times every turn"
    recognition_skipped = None
    if transcript is not None:
        recognition_skipped = "a transcript was sent"
    elif not job.speech_recognition:
        recognition_skipped = "speech recognition is off (setting speech_recognition)"
    # the option names a separated voice only when no transcript label can take it
    option = job.participant_speaker if transcript is None or not transcript.speakers else None
    return hearing.hear(
        signal,
        models,
        separation_skipped=separation_skipped,
        recognition_skipped=recognition_skipped,
        participant_speaker=option,
    )


def _transcript_check(
    job: ExtractionJob,
    transcript: Any,
    signal: np.ndarray,
    heard: hearing.Heard,
    turns: list[tuple[float, float]],
    models: hearing.SpeechModels,
) -> tuple[TranscriptCheckReport, str | None]:
    """Whether the sent transcript says what the recording says: the patient's first seconds of
    speech (separated turns, else the transcript's own turns, else the whole recording) heard by
    speech recognition and matched against every line of the transcript (``app.speech.agreement``).
    The report, and why the transcript is left out (None: it is kept)."""
    if job.transcript_check_off is not None:
        return TranscriptCheckReport(ran=False, reason=job.transcript_check_off), None
    if models.recogniser is None:
        return TranscriptCheckReport(ran=False, reason=hearing.NO_RECOGNISER), None
    limits = job.limits
    whole = [(0.0, signal.shape[0] / hearing.SAMPLE_RATE)]
    spans = heard.turns if heard.several_speakers else turns or whole
    words, confidence, seconds = hearing.hear_sample(signal, models.recogniser, spans, limits.transcript_check_seconds)
    found = agreement(words, normalised_words(u.text for u in transcript.utterances))
    verdict = judge(found, confidence, seconds, limits.transcript_check_min_share, hearing.MIN_RECOGNITION_CONFIDENCE)
    report = TranscriptCheckReport(
        ran=True,
        reason=verdict.reason if verdict.matches is None else None,  # a rejection's reason is the text's
        seconds_heard=round(seconds, 1),
        words_heard=found.heard_words,
        agreement=round(found.share, 3),
        min_agreement=limits.transcript_check_min_share,
        matches=verdict.matches,
    )
    return report, verdict.reason if verdict.matches is False else None


def _speakers_report(heard: hearing.Heard) -> SpeakersReport:
    if not heard.separated:
        return SpeakersReport(separated=False, reason=heard.separation_skipped)
    return SpeakersReport(
        separated=True,
        count=heard.speakers,
        confidence=round(float(np.clip(heard.count_confidence, 0.0, 1.0)), 4),
        rule=heard.count_rule or None,
        seconds=[round(s, 1) for s in heard.speaker_seconds],
        participant=hearing.label(heard.participant) if heard.participant is not None else None,
        selection=heard.selection,
    )


def _labelled_participant(utterances: list[Utterance], heard: hearing.Heard) -> tuple[list[Utterance], int]:
    """A timed, unlabelled transcript's lines that the separated turns give to the patient,
    and how many lines fell in nobody's turn."""
    labelled = hearing.label_utterances(utterances, heard)
    assert heard.participant is not None
    mine = hearing.label(heard.participant)
    return [u for u in labelled if u.speaker == mine], sum(u.speaker is None for u in labelled)


def _recognised_utterances(heard: hearing.Heard, limits: InputLimits) -> tuple[list[Utterance], str | None]:
    """The recognised turns for the text branch, or none and why (no words; too unsure)."""
    if heard.interviewer:
        return [], heard.interviewer
    if heard.separated and heard.speakers == 0:
        return [], "speaker separation found no voice in the recording, so speech recognition had nothing to hear"
    if not heard.utterances:
        return [], "speech recognition heard no words from the participant"
    confidence = heard.recognition.get("confidence", 0.0)
    if confidence < hearing.MIN_RECOGNITION_CONFIDENCE:
        return [], (
            f"speech recognition was unsure of the participant's words (confidence {confidence:.2f}, "
            f"at least {hearing.MIN_RECOGNITION_CONFIDENCE:.2f} is needed)"
        )
    return list(heard.utterances), None


def _describe_recognition(report: ModalityReport, heard: hearing.Heard, return_transcript: bool) -> None:
    """inputs.text for recognised words: the source, what recognition found, and the words when asked."""
    report.source = "speech recognition"
    report.format = "speech recognition (Moonshine tiny, English)"
    report.quality.update(
        {
            "recognition_confidence": heard.recognition.get("confidence", 0.0),
            "recognised_segments": heard.recognition.get("segments", 0.0),
            "recognised_seconds": heard.recognition.get("seconds", 0.0),
        }
    )
    if heard.selection is not None and heard.several_speakers:
        report.selections = [heard.selection]
    if return_transcript:
        report.transcript = [
            RecognisedSegment(
                start_s=round(u.start_s or 0.0, 2), end_s=round(u.end_s or 0.0, 2), speaker=u.speaker, text=u.text
            )
            for u in heard.utterances
        ]
