"""Speaker turns of one mono recording: who speaks when, and how many people do.

1. **Voice activity** on 10-ms frames: the same energy rule as the audio branch
   (``app.features.audio.speech_frames``: above the noise floor by a margin, never far below
   the loudest frames), then pauses shorter than ``BRIDGE_S`` bridged and bursts shorter
   than ``MIN_SPEECH_S`` dropped.
2. **Voice embeddings** (``app.speech.voices``) of ``WINDOW_S`` windows every ``HOP_S`` over
   the speech, each brought to the same level.
3. **Clustering**: average linkage on cosine distance. Average linkage merges two groups at
   1 - their mean cross similarity, so cutting the tree at 1 - ``SAME_VOICE_MIN_SIMILARITY``
   is the stated rule "two groups of windows are one voice when they sound alike on average".
   Groups too small to be a speaker (under ``MIN_SPEAKER_S`` of windows) join their nearest.
   At most ``MAX_CLUSTER_WINDOWS`` windows are clustered (evenly spaced, so an hour costs what
   a quarter of an hour does); every window is then given its nearest centroid.
4. **Turns**: each speech frame takes the speaker most of its windows were given; a turn is a
   run of one speaker's speech with pauses under ``TURN_GAP_S`` inside it.

Speakers are numbered by how much they speak: speaker 0 speaks most. Pure over the signal and
the encoder session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.features.audio import speech_frames
from app.runtime import ModelRuntime
from app.speech.voices import FRAME_S, embed_windows, encoder_mel, window_gains

WINDOW_S = 1.5  # the research note's segment length: two voices were told apart in every pair tried
HOP_S = 0.25
WINDOW_FRAMES = round(WINDOW_S / FRAME_S)
HOP_FRAMES = round(HOP_S / FRAME_S)
PIECE_S = 1.5  # a stretch's voice prints are of pieces this long (see _pieces)
SPLIT_PAUSE_S = 0.4  # windows do not reach across a pause this long (see _speech_windows)
BRIDGE_S = 0.3  # pauses inside a word or between words
MIN_SPEECH_S = 0.2  # a click or a breath
TURN_GAP_S = 1.0  # a pause this long or longer ends a turn
# mean cosine similarity of two groups of 1.5-s windows of one voice, measured on espeak-ng
# voices (tests/test_speaker_turns.py): same voice 0.80-0.90, different voices 0.35-0.65;
# the research note saw 0.79 within and 0.40-0.48 across
SAME_VOICE_MIN_SIMILARITY = 0.65
MIN_SPEAKER_S = 2.0  # of speech: less than this is not taken as a separate person
MAX_CLUSTER_WINDOWS = 1500
# the similarity margin that makes a count (or a turn) fully confident
CONFIDENT_MARGIN = 0.15


@dataclass(frozen=True)
class Turn:
    start_s: float
    end_s: float
    speaker: int
    confidence: float  # 0-1: how much closer its windows are to their own voice than to any other


@dataclass(frozen=True)
class SpeakerCount:
    speakers: int
    confidence: float  # 0-1
    rule: str


@dataclass(frozen=True)
class SpeakerTurns:
    turns: list[Turn]
    count: SpeakerCount
    speech_s: list[float]  # per speaker, most first
    frame_labels: np.ndarray = field(repr=False)  # per 10-ms frame: speaker index, -1 no speech

    def spans(self, speaker: int) -> list[tuple[float, float]]:
        return [(t.start_s, t.end_s) for t in self.turns if t.speaker == speaker]

    def describe(self) -> dict[str, Any]:
        return {
            "speakers": self.count.speakers,
            "confidence": round(self.count.confidence, 3),
            "rule": self.count.rule,
            "speech_s": [round(s, 2) for s in self.speech_s],
            "turns": len(self.turns),
        }


def voice_activity(mel: np.ndarray) -> np.ndarray:
    """Speech flag per 10-ms frame of a power mel: energy rule, short pauses bridged, bursts dropped."""
    if mel.shape[0] == 0:
        return np.zeros(0, bool)
    speech, _ = speech_frames(10.0 * np.log10(np.maximum(mel, 1e-10)))
    speech = _fill_runs(speech, False, round(BRIDGE_S / FRAME_S))
    return ~_fill_runs(~speech, False, round(MIN_SPEECH_S / FRAME_S))


def _fill_runs(flags: np.ndarray, value: bool, shorter_than: int) -> np.ndarray:
    """Runs of ``value`` shorter than ``shorter_than`` frames between runs of the other value, flipped."""
    out = flags.copy()
    for start, end in _runs(flags == value):
        inside = start > 0 and end < flags.shape[0]
        if inside and end - start < shorter_than:
            out[start:end] = not value
    return out


def speaker_turns(
    samples16k: np.ndarray, encoder: ModelRuntime, speakers: int | None = None, max_speakers: int = 4
) -> SpeakerTurns:
    """Who speaks when in a 16-kHz mono signal (see the module's steps); ``speakers`` forces the count."""
    signal = np.asarray(samples16k, np.float32)
    mel = encoder_mel(signal)
    speech = voice_activity(mel)
    frames = speech.shape[0]
    if not speech.any():
        return SpeakerTurns([], SpeakerCount(0, 1.0, "no speech was found"), [], np.full(frames, -1))
    segments, windows, owner = _speech_windows(speech)
    if not windows:
        return SpeakerTurns([], SpeakerCount(0, 1.0, "no speech was found"), [], np.full(frames, -1))
    embeddings = embed_windows(mel, windows, window_gains(signal, windows), encoder)
    # one voice print per piece of a stretch: the mean of its windows (a 1.5-s window alone
    # varies with what is said nearly as much as with who says it)
    pieces, piece_spans = _pieces(windows, owner, segments)
    prints = _centroids(embeddings, pieces, len(piece_spans))
    if len(piece_spans) < 2:
        piece_labels = np.zeros(len(piece_spans), int)
        count = SpeakerCount(1, 0.3, "too little speech to compare voices: taken as one")
    else:
        piece_labels, count = _cluster(prints, piece_spans, speakers, max_speakers)
    labels = piece_labels[pieces]
    frame_labels = _frame_labels(speech, windows, labels, count.speakers)
    # most speech first
    seconds = np.array([(frame_labels == k).sum() * FRAME_S for k in range(count.speakers)])
    order = np.argsort(-seconds, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    frame_labels = np.where(frame_labels >= 0, rank[np.maximum(frame_labels, 0)], -1)
    labels = rank[labels]
    centroids = _centroids(embeddings, labels, count.speakers)
    turns = _turns(frame_labels, windows, embeddings, labels, centroids)
    return SpeakerTurns(turns, count, [float(s) for s in seconds[order]], frame_labels)


def _speech_windows(speech: np.ndarray) -> tuple[list[tuple[int, int]], list[tuple[int, int]], np.ndarray]:
    """Stretches of speech, and (first, last) frame windows inside them: up to
    ``WINDOW_FRAMES`` long, every ``HOP_FRAMES``; a stretch shorter than a window is one window
    of its own. Returns (stretches, windows, the stretch of each window).

    A stretch ends at a pause of ``SPLIT_PAUSE_S`` or more: speakers usually change at a
    pause, and a window across the change would sound like neither voice."""
    runs = _runs(_fill_runs(speech, False, round(SPLIT_PAUSE_S / FRAME_S)))
    segments = [(a, b) for a, b in runs if b - a >= round(MIN_SPEECH_S / FRAME_S)]
    windows: list[tuple[int, int]] = []
    owner: list[int] = []
    for k, (first, last) in enumerate(segments):
        if last - first <= WINDOW_FRAMES:
            starts = [first]
        else:
            starts = list(range(first, last - WINDOW_FRAMES + 1, HOP_FRAMES))
            if starts[-1] + WINDOW_FRAMES < last:  # the stretch's end gets a window too
                starts.append(last - WINDOW_FRAMES)
        windows += [(a, min(a + WINDOW_FRAMES, last)) for a in starts]
        owner += [k] * len(starts)
    return segments, windows, np.array(owner, dtype=int)


def _pieces(
    windows: list[tuple[int, int]], owner: np.ndarray, segments: list[tuple[int, int]]
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Stretches cut into pieces of ``PIECE_S`` (by window start): the piece of each window, and
    each piece's (first, last) frames. Without a pause between them two voices share a
    stretch; a piece that short holds mostly one of them."""
    piece_frames = round(PIECE_S / FRAME_S)
    keys = [(int(k), (a - segments[k][0]) // piece_frames) for (a, _), k in zip(windows, owner, strict=True)]
    index: dict[tuple[int, int], int] = {}
    pieces = np.array([index.setdefault(key, len(index)) for key in keys], dtype=int)
    spans = [
        (
            min(windows[i][0] for i in np.flatnonzero(pieces == p)),
            max(windows[i][1] for i in np.flatnonzero(pieces == p)),
        )
        for p in range(len(index))
    ]
    return pieces, spans


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _centroids(embeddings: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    means = np.stack([embeddings[labels == c].mean(axis=0) if (labels == c).any() else np.zeros(256) for c in range(k)])
    return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


def _cluster(
    embeddings: np.ndarray, windows: list[tuple[int, int]], forced: int | None, max_speakers: int
) -> tuple[np.ndarray, SpeakerCount]:
    from scipy.cluster.hierarchy import fcluster, linkage

    n = embeddings.shape[0]
    step = max(1, int(np.ceil(n / MAX_CLUSTER_WINDOWS)))
    sample = embeddings[::step].astype(np.float64)
    spans = windows[::step]
    tree = linkage(sample, method="average", metric="cosine")
    cut = 1.0 - SAME_VOICE_MIN_SIMILARITY
    if forced is not None:
        k = int(np.clip(forced, 1, sample.shape[0]))
        sample_labels = _compact(fcluster(tree, k, criterion="maxclust") - 1)
    else:
        sample_labels = _compact(fcluster(tree, cut, criterion="distance") - 1)
        # too little speech to be a person (a cough, a laugh, a window across two voices)
        sample_labels = _absorb_small(sample, spans, sample_labels, MIN_SPEAKER_S * step)
        if sample_labels.max() + 1 > max_speakers:
            sample_labels = _compact(fcluster(tree, max_speakers, criterion="maxclust") - 1)
    k = int(sample_labels.max()) + 1
    centroids = _centroids(sample, sample_labels, k)
    labels = np.argmax(embeddings @ centroids.T, axis=1) if k > 1 else np.zeros(n, int)
    within = _least_within_similarity(sample, sample_labels, k)
    if k > 1:
        across = _closest_cross_similarity(sample, sample_labels, k)
        # sure when the most alike voices sit well under the line and every voice well over it
        margin = min(SAME_VOICE_MIN_SIMILARITY - across, within - SAME_VOICE_MIN_SIMILARITY)
        rule = (
            f"{k} voices: speech windows grouped by how alike they sound (average linkage); two groups are "
            f"one voice at a mean similarity of {SAME_VOICE_MIN_SIMILARITY:.2f} or more, and the most alike "
            f"groups here score {across:.2f}"
        )
    else:
        margin = within - SAME_VOICE_MIN_SIMILARITY
        rule = (
            f"one voice: the speech windows sound alike (mean similarity {within:.2f}; "
            f"two voices score under {SAME_VOICE_MIN_SIMILARITY:.2f})"
        )
    if forced is not None:
        rule = f"the count asked for ({k})"
    confidence = float(np.clip(margin / CONFIDENT_MARGIN, 0.0, 1.0))
    return labels.astype(int), SpeakerCount(k, confidence, rule)


def _least_within_similarity(sample: np.ndarray, labels: np.ndarray, k: int) -> float:
    """The lowest mean similarity of a group's windows among themselves."""
    values = []
    for c in range(k):
        group = sample[labels == c]
        if group.shape[0] > 1:
            total = group.sum(axis=0)
            # mean over distinct pairs of unit vectors: (|sum|^2 - n) / (n (n - 1))
            values.append((float(total @ total) - group.shape[0]) / (group.shape[0] * (group.shape[0] - 1)))
    return min(values) if values else 1.0


def _closest_cross_similarity(sample: np.ndarray, labels: np.ndarray, k: int) -> float:
    """The highest mean cross similarity between two groups' windows (average linkage's own measure)."""
    means = np.stack([sample[labels == c].mean(axis=0) for c in range(k)])
    cross = means @ means.T
    np.fill_diagonal(cross, -np.inf)
    return float(cross.max())


def _absorb_small(
    sample: np.ndarray, spans: list[tuple[int, int]], labels: np.ndarray, min_seconds: float
) -> np.ndarray:
    """Groups whose windows cover less than ``min_seconds`` join the group they sound most like."""
    labels = labels.copy()
    while True:
        present = np.unique(labels)
        if present.size <= 1:
            return _compact(labels)
        seconds = {int(c): _covered_s([spans[i] for i in np.flatnonzero(labels == c)]) for c in present}
        c = min(seconds, key=seconds.__getitem__)
        if seconds[c] >= min_seconds:
            return _compact(labels)
        mean = sample[labels == c].mean(axis=0)
        others = [int(g) for g in present if g != c]
        best = max(others, key=lambda g: float(mean @ sample[labels == g].mean(axis=0)))
        labels[labels == c] = best


def _covered_s(spans: list[tuple[int, int]]) -> float:
    """Seconds covered by (first, last) frame windows, overlaps counted once."""
    covered, end = 0, -1
    for first, last in sorted(spans):
        covered += max(0, last - max(first, end))
        end = max(end, last)
    return covered * FRAME_S


def _compact(labels: np.ndarray) -> np.ndarray:
    _, compact = np.unique(labels, return_inverse=True)
    return compact.astype(int)


def _frame_labels(speech: np.ndarray, windows: list[tuple[int, int]], labels: np.ndarray, k: int) -> np.ndarray:
    """Per speech frame the speaker most covering windows were given; -1 outside speech."""
    frames = speech.shape[0]
    votes = np.zeros((frames + 1, max(k, 1)), np.int32)
    for (first, last), label in zip(windows, labels, strict=True):
        votes[first, label] += 1
        votes[min(last, frames), label] -= 1
    votes = np.cumsum(votes, axis=0)[:frames]
    covered = votes.sum(axis=1) > 0
    best = np.argmax(votes, axis=1)
    out = np.where(speech & covered, best, -1)
    # speech no window covers (a burst between long pauses): the nearest covered frame's speaker
    lost = np.flatnonzero(speech & ~covered)
    if lost.size and covered.any():
        known = np.flatnonzero(covered)
        nearest = known[np.clip(np.searchsorted(known, lost), 0, known.size - 1)]
        out[lost] = best[nearest]
    return out


def _turns(
    frame_labels: np.ndarray,
    windows: list[tuple[int, int]],
    embeddings: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
) -> list[Turn]:
    gap = round(TURN_GAP_S / FRAME_S)
    speech = np.flatnonzero(frame_labels >= 0)
    if speech.size == 0:
        return []
    # window margins: similarity to its own voice minus the nearest other (0 with one voice)
    sims = embeddings @ centroids.T
    own = sims[np.arange(labels.size), labels]
    if centroids.shape[0] > 1:
        sims[np.arange(labels.size), labels] = -np.inf
        margin = np.clip((own - sims.max(axis=1)) / CONFIDENT_MARGIN, 0.0, 1.0)
    else:
        margin = np.ones(labels.size)
    centres = np.array([(a + b) / 2 for a, b in windows])
    turns: list[Turn] = []
    start = prev = int(speech[0])
    for frame in [*speech[1:].tolist(), None]:
        same = frame is not None and frame_labels[frame] == frame_labels[prev] and frame - prev < gap
        if same:
            prev = frame
            continue
        speaker = int(frame_labels[start])
        inside = (centres >= start) & (centres <= prev + 1) & (labels == speaker)
        confidence = float(margin[inside].mean()) if inside.any() else 0.0
        turns.append(Turn(round(start * FRAME_S, 2), round((prev + 1) * FRAME_S, 2), speaker, round(confidence, 3)))
        if frame is not None:
            start = prev = frame
    return turns
