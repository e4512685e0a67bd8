"""Which recorded sound is the participant's: one of several audio tracks, one channel of a
two-channel call recording, or the whole recording.

Call recorders write the two sides of a call either as separate tracks or as the two
channels of one stereo track. Using the first track, or the mix, would feed the
clinician's voice to a model trained on the participant's, and swapping the track order
would change the answer. So every candidate is listed and one is chosen, in this order:

1. the client's option (``participant_track``, 1-based; ``participant_channel``, left or right);
2. with the participant's turns from a timed, speaker-labelled transcript: the candidate
   whose speech lies most inside those turns rather than the other speakers'
   (confident when it leads the next by ``OVERLAP_LEAD``);
3. else the candidate with the most speech: in a clinical interview the patient answers
   at length and the interviewer asks short questions (confident when it has
   ``SPEECH_LEAD`` times the next one's speech).

The answer names every candidate, the chosen one and the rule (``Selection``); a weak
choice also gets a warning naming the option that settles it.

Pure numpy over decoded signals; the caller decodes (``app.features.audio.decode_audio``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app.answer.schema import Candidate, Selection
from app.contract import AudioSpec
from app.errors import ConflictingInputError
from app.features import audio as audio_features

# Pearson r between the two channels' loudness envelopes (dB per ENVELOPE_S) under which they
# are two sides of a call, not one scene in stereo. Loudness, not samples: two microphones half
# a millisecond apart already decorrelate the samples of speech, never its loudness. Measured
# on generated recordings (tests/test_speech_sources.py): dual mono 1.0, a voice on both
# channels 0.5 ms apart 0.99, one espeak-ng voice per channel with alternating turns -0.5
INDEPENDENT_CHANNELS_MAX_R = 0.3
ENVELOPE_S = 0.02
# rule 2: the chosen candidate's share of speech inside the participant's turns must lead
# the next one's by this much to be a confident choice
OVERLAP_LEAD = 0.2
# rule 3: the chosen candidate must have this many times the next one's speech to be confident
SPEECH_LEAD = 1.5
CHANNEL_NAMES = ("left", "right")


@dataclass(frozen=True)
class AudioSource:
    """One candidate recording of the participant: a track, mixed, or one of its channels."""

    name: str  # "track 2", "left channel", "track 1, right channel"
    signal: np.ndarray  # (samples,) float32 mono at the spec's sample rate


@dataclass
class SourceChoice:
    source: AudioSource
    selections: list[Selection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def channels_are_independent(channels: np.ndarray) -> bool:
    """True when a (2, samples) recording holds two different sources, one per channel.

    Dual mono and ordinary stereo (one scene from two microphones) correlate strongly; the two
    sides of a call recorded one per channel hardly at all. A silent channel counts as
    independent: it is a side with nobody on it, and the speech rule will not choose it.
    """
    if channels.ndim != 2 or channels.shape[0] != 2:
        return False
    r = envelope_correlation(channels)
    if r is None:  # a silent channel (or both)
        return bool(np.any(channels))
    return r < INDEPENDENT_CHANNELS_MAX_R


def envelope_correlation(channels: np.ndarray, sample_rate: int = 16000) -> float | None:
    """Pearson r of the two channels' loudness (dB per ENVELOPE_S); None when one is constant."""
    step = max(1, round(ENVELOPE_S * sample_rate))
    n = channels.shape[1] // step
    if n < 2:
        return None
    power = np.square(channels[:, : n * step].astype(np.float64)).reshape(2, n, step).mean(axis=2)
    loud = 10.0 * np.log10(power + 1e-10)
    loud -= loud.mean(axis=1, keepdims=True)
    norm = float(np.sqrt(np.dot(loud[0], loud[0]) * np.dot(loud[1], loud[1])))
    if norm < 1e-9:
        return None
    return float(np.dot(loud[0], loud[1])) / norm


def _speech_mask(signal: np.ndarray, spec: AudioSpec) -> np.ndarray:
    speech, _ = audio_features.speech_frames(audio_features.mel_power_db(signal, spec))
    return speech


def _inside(n_frames: int, rate_hz: float, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """(n_frames,) bool: frame lies in one of the (start_s, end_s) spans."""
    times = np.arange(n_frames) / rate_hz
    inside = np.zeros(n_frames, dtype=bool)
    for start, end in spans:
        inside |= (times >= start) & (times < end)
    return inside


def choose(
    candidates: Sequence[AudioSource],
    kind: str,
    spec: AudioSpec,
    option: int | None = None,
    option_name: str = "participant_track",
    participant_turns: Sequence[tuple[float, float]] = (),
    other_turns: Sequence[tuple[float, float]] = (),
) -> SourceChoice:
    """The participant's candidate among ``candidates`` (``kind``: audio_track or audio_channel);
    ``option`` is the client's 0-based choice. One candidate: chosen, no selection reported."""
    if option is not None and not 0 <= option < len(candidates):
        what = "audio tracks" if kind == "audio_track" else "channels"
        raise ConflictingInputError(
            f"{option_name} names no candidate: the recording has {len(candidates)} {what}"
        )
    if len(candidates) == 1:
        return SourceChoice(candidates[0])
    rate = spec.rate_hz
    speech = [_speech_mask(c.signal, spec) for c in candidates]
    seconds = [float(s.sum()) / rate for s in speech]
    warnings: list[str] = []
    if option is not None:
        chosen, rule, confident = option, f"the option {option_name}", True
    elif participant_turns:
        shares = []
        for s in speech:
            mine = float((s & _inside(s.size, rate, participant_turns)).sum())
            theirs = float((s & _inside(s.size, rate, other_turns)).sum()) if other_turns else float(s.sum()) - mine
            shares.append(mine / (mine + theirs) if mine + theirs > 0 else 0.0)
        order = np.argsort(shares)[::-1]
        chosen = int(order[0])
        confident = shares[chosen] - shares[int(order[1])] >= OVERLAP_LEAD
        rule = "its speech lies inside the transcript's participant turns (most of all candidates)"
    else:
        order = np.argsort(seconds)[::-1]
        chosen = int(order[0])
        runner_up = seconds[int(order[1])]
        confident = seconds[chosen] > 0 and seconds[chosen] >= SPEECH_LEAD * runner_up
        rule = "the most speech (in an interview the participant answers at length)"
    if not confident:
        what = "audio track" if kind == "audio_track" else "channel"
        warnings.append(
            f"the choice of the participant's {what} is weak ({len(candidates)} candidates with similar "
            f"evidence); set {option_name} to be sure"
        )
    selection = Selection(
        kind=kind,  # type: ignore[arg-type]
        rule=rule,
        confident=confident,
        candidates=[
            Candidate(name=c.name, chosen=k == chosen, seconds=round(seconds[k], 2)) for k, c in enumerate(candidates)
        ],
    )
    return SourceChoice(candidates[chosen], [selection], warnings)


def participant_source(
    tracks: Sequence[tuple[str, np.ndarray]],
    spec: AudioSpec,
    track_option: int | None = None,
    channel_option: int | None = None,
    participant_turns: Sequence[tuple[float, float]] = (),
    other_turns: Sequence[tuple[float, float]] = (),
) -> SourceChoice:
    """The participant's sound among decoded ``tracks`` ((name, (channels, samples))): first the
    track (each mixed to mono), then, when that track's two channels are independent, the channel.

    ``track_option`` / ``channel_option`` are the client's 0-based choices; a channel option on a
    recording whose channels are not independent is refused (it would select half of one scene).
    """
    mixed = [AudioSource(name, channels.mean(axis=0)) for name, channels in tracks]
    by_track = choose(mixed, "audio_track", spec, track_option, "participant_track", participant_turns, other_turns)
    channels = dict(tracks)[by_track.source.name]
    if not channels_are_independent(channels):
        if channel_option is not None:
            raise ConflictingInputError(
                "participant_channel was set, but the recording's channels carry the same sound "
                "(mono or ordinary stereo), not one side of the call each"
            )
        return by_track
    prefix = f"{by_track.source.name}, " if len(tracks) > 1 else ""
    sides = [AudioSource(f"{prefix}{name} channel", channels[k]) for k, name in enumerate(CHANNEL_NAMES)]
    by_channel = choose(
        sides, "audio_channel", spec, channel_option, "participant_channel", participant_turns, other_turns
    )
    return SourceChoice(
        by_channel.source,
        by_track.selections + by_channel.selections,
        by_track.warnings + by_channel.warnings,
    )
