"""The speech stage on a recording without a timed, speaker-labelled transcript: who speaks
when, which speaker is the patient, and the patient's words.

Runs on the participant's audio as ``app.speech.sources`` chose it (a track, a call side, or
the mix), after decoding and before the audio features:

1. **Speaker separation** (``app.speech.turns``): voice activity, voice embeddings, clustering
   into one or more speakers, speaker turns. Speakers are named ``speaker 1``, ``speaker 2``...
   by how much they speak.
2. **The patient**: the client's ``participant_speaker`` when it names one of those labels;
   else one voice -> that voice; else the speaker with the most speech (in a clinical
   interview the patient answers at length), *confident* only when it has ``SPEECH_LEAD``
   times the next one's speech, and a warning naming ``participant_speaker`` when it has not.
3. **Speech-to-text** (``app.speech.recognition``) of the patient's turns only: each turn is
   one utterance, timed on the interview clock and labelled with its speaker.

The output (``Heard``) restricts the audio branch to the patient's turns and feeds the text
branch exactly as an uploaded transcript's participant turns do. A timed transcript without
speaker labels (Whisper JSON, SRT without names) is labelled from the same turns instead
(``label_utterances``): each utterance goes to the speaker who talks most inside its times.

Pure over decoded signals; the models arrive loaded (``SpeechModels``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.answer.schema import Candidate, Selection
from app.errors import ConflictingInputError
from app.features.transcript import Utterance, is_question, word_count
from app.model_store import MODEL_FILE, speech_to_text_dir
from app.runtime import ModelRuntime, RuntimeConfig
from app.speech import turns as speaker_turns_module
from app.speech.agreement import normalised_words
from app.speech.recognition import SpeechRecogniser, TimedText
from app.speech.sources import SPEECH_LEAD
from app.speech.voices import load_voice_encoder, voice_encoder_dir

Span = tuple[float, float]
SAMPLE_RATE = 16000
# the answer's names for the separated speakers, 1-based by how much each speaks
SPEAKER_LABEL = "speaker {}"
_LABEL = re.compile(r"^\s*speaker\s*(\d+)\s*$", re.IGNORECASE)
# recognised text whose mean token probability is under this is not used: measured on
# espeak-ng sentences, correctly heard ones scored 0.80-0.93 and gibberish 0.42
MIN_RECOGNITION_CONFIDENCE = 0.55
# turns shorter than this are not sent to speech recognition (a cough, an "mm"); the
# recogniser needs at least 0.1 s and says little in under half a second
MIN_RECOGNISED_TURN_S = 0.5
# a voice taken for the patient by rule whose recognised turns are at least this share
# questions (of at least MIN_JUDGED_TURNS turns) sounds like the interviewer: its speech and
# words are not scored as the patient's (generated interviews: a patient's answers score 0.0,
# one voice asking and answering 0.5, an interviewer reading questions 0.94)
INTERVIEWER_QUESTION_SHARE = 0.75
NO_RECOGNISER = "the model store has no speech-to-text model"
MIN_JUDGED_TURNS = 4


@dataclass(frozen=True)
class SpeechModels:
    """The speech stage's models, loaded once per worker; either may be absent from a store
    (a store built before them): the step that needs it then says so in the answer."""

    voice_encoder: ModelRuntime | None
    recogniser: SpeechRecogniser | None

    @classmethod
    def load(cls, store: Path, config: RuntimeConfig) -> SpeechModels:
        # one intra-op thread each: a second thread never made either faster (research note)
        single = RuntimeConfig(intra_op_threads=1, inter_op_threads=1, graph_optimization=config.graph_optimization)
        encoder = load_voice_encoder(store, single) if (voice_encoder_dir(store) / MODEL_FILE).is_file() else None
        folder = speech_to_text_dir(store)
        recogniser = None
        if (folder / "encoder.onnx").is_file():
            recogniser = SpeechRecogniser(folder, single)
            recogniser.verify()
        return cls(voice_encoder=encoder, recogniser=recogniser)

    def warm(self) -> None:
        if self.recogniser is not None:
            self.recogniser.warm()
        if self.voice_encoder is not None:
            rng = np.random.default_rng(0)
            speaker_turns_module.speaker_turns(
                (0.1 * rng.standard_normal(2 * SAMPLE_RATE)).astype(np.float32), self.voice_encoder
            )

    def providers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if self.voice_encoder is not None:
            out["voice_encoder"] = list(self.voice_encoder.providers)
        if self.recogniser is not None:
            out["speech_to_text"] = list(self.recogniser.providers)
        return out


@dataclass
class Heard:
    """What the speech stage found: the patient's turns (for the audio branch), everyone
    else's, the recognised utterances (for the text branch) and what to report.

    ``separation_skipped``/``recognition_skipped`` say why a step did not run (None: it ran)."""

    separation_skipped: str | None = None
    recognition_skipped: str | None = None
    speakers: int = 0
    speaker_seconds: list[float] = field(default_factory=list)
    participant: int | None = None  # speaker index (0-based, by speech); None: no speech or not separated
    selection: Selection | None = None
    count_rule: str = ""
    count_confidence: float = 0.0
    turns: list[Span] = field(default_factory=list)
    other_turns: list[Span] = field(default_factory=list)
    labelled_turns: list[tuple[float, float, int]] = field(default_factory=list)
    utterances: list[Utterance] = field(default_factory=list)
    recognition: dict[str, float] = field(default_factory=dict)
    interviewer: str | None = None  # why the voice taken for the patient sounds like the interviewer
    choice_warning: str | None = None  # the weak-rule warning of the patient's choice, if any
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def separated(self) -> bool:
        return self.separation_skipped is None

    @property
    def recognised(self) -> bool:
        return self.recognition_skipped is None

    @property
    def several_speakers(self) -> bool:
        """Separation found more than one voice: the audio branch keeps the patient's turns only."""
        return self.separated and self.speakers > 1 and self.participant is not None


def hear(
    signal: np.ndarray,
    models: SpeechModels,
    *,
    separation_skipped: str | None,
    recognition_skipped: str | None,
    participant_speaker: str | None,
) -> Heard:
    """The speech stage on a 16-kHz mono signal: each step runs unless the caller gives the
    reason it does not (a setting, a transcript that already says it), or its model is absent."""
    if separation_skipped is None and models.voice_encoder is None:
        separation_skipped = "the model store has no voice encoder"
    if recognition_skipped is None and models.recogniser is None:
        recognition_skipped = NO_RECOGNISER
    heard = Heard(separation_skipped=separation_skipped, recognition_skipped=recognition_skipped)
    if separation_skipped is None:
        assert models.voice_encoder is not None
        separate(signal, models.voice_encoder, participant_speaker, heard)
    if recognition_skipped is None:
        assert models.recogniser is not None
        if separation_skipped is not None:
            # nobody's turns are known: every voice in the recording is heard, and said so
            heard.turns = [(0.0, signal.shape[0] / SAMPLE_RATE)]
            heard.warnings.append(
                f"speech recognition heard every voice in the recording ({separation_skipped}, so speaker "
                "separation did not run): the text branch may hold the clinician's words"
            )
        before_recognition = len(heard.warnings)
        recognise(signal, heard, models.recogniser)
        if heard.separated and participant_speaker is None:
            check_interviewer(signal, heard, models.recogniser, before_recognition)
    return heard


def label(index: int) -> str:
    return SPEAKER_LABEL.format(index + 1)


def option_index(option: str | None, speakers: int) -> int | None:
    """The client's ``participant_speaker`` as a separated speaker's index; None without one.

    Only the stage's own labels (``speaker 2``) can name a separated voice; anything else is a
    422 that counts the speakers and quotes nothing the client sent."""
    if option is None:
        return None
    match = _LABEL.match(option)
    if match is None or not 1 <= int(match.group(1)) <= speakers:
        raise ConflictingInputError(
            f"participant_speaker matches none of the {speakers} speakers that speaker separation found; "
            f"name one as inputs.speakers does: speaker 1 to speaker {speakers} (by speech, most first)"
        )
    return int(match.group(1)) - 1


def choose_participant(seconds: Sequence[float], option: int | None) -> tuple[int, Selection, str | None]:
    """(speaker index, the selection as the answer states it, a warning when the rule is weak)."""
    warning = None
    if option is not None:
        chosen, rule, confident = option, "the option participant_speaker", True
    elif len(seconds) == 1:
        chosen, rule, confident = 0, "the only voice in the recording", True
    else:
        chosen = int(np.argmax(seconds))
        ranked = sorted(seconds, reverse=True)
        confident = ranked[0] >= SPEECH_LEAD * ranked[1]
        rule = "the speaker with the most speech (in an interview the patient answers at length)"
        if not confident:
            warning = (
                f"the patient was taken to be {label(chosen)} of {len(seconds)} by a weak rule (most speech, "
                f"{ranked[0]:.0f} s against {ranked[1]:.0f} s): if the clinician spoke more, set participant_speaker "
                "to the patient's speaker as inputs.speakers names them"
            )
    candidates = [
        Candidate(name=label(k), chosen=k == chosen, seconds=round(float(s), 1)) for k, s in enumerate(seconds)
    ]
    return chosen, Selection(kind="speaker", rule=rule, confident=confident, candidates=candidates), warning


def separate(signal: np.ndarray, encoder: ModelRuntime, participant_speaker: str | None, heard: Heard) -> None:
    """Speaker turns of a 16-kHz mono signal and the patient among them (steps 1 and 2), into ``heard``."""
    started = time.perf_counter()
    found = speaker_turns_module.speaker_turns(signal, encoder)
    heard.timings_ms["separation"] = 1000 * (time.perf_counter() - started)
    count = found.count
    heard.count_rule, heard.count_confidence = count.rule, float(count.confidence)
    heard.speakers = count.speakers
    if count.speakers == 0:
        return
    seconds = [float(s) for s in found.speech_s]
    chosen, selection, warning = choose_participant(seconds, option_index(participant_speaker, count.speakers))
    heard.speaker_seconds = seconds
    heard.participant, heard.selection = chosen, selection
    heard.turns = found.spans(chosen)
    heard.other_turns = [(t.start_s, t.end_s) for t in found.turns if t.speaker != chosen]
    heard.labelled_turns = [(t.start_s, t.end_s, t.speaker) for t in found.turns]
    if warning:
        heard.choice_warning = warning
        heard.warnings.append(warning)
    if count.speakers > 1 and count.confidence < 0.5:
        heard.warnings.append(
            f"speaker separation is unsure how many people speak ({count.speakers} found, confidence "
            f"{count.confidence:.2f}); the patient's turns may hold another voice"
        )


def _take_speaker(heard: Heard, speaker: int) -> None:
    heard.participant = speaker
    heard.turns = [(a, b) for a, b, k in heard.labelled_turns if k == speaker]
    heard.other_turns = [(a, b) for a, b, k in heard.labelled_turns if k != speaker]


def _questions(heard: Heard) -> tuple[int, int]:
    return sum(is_question(u.text) for u in heard.utterances), len(heard.utterances)


def check_interviewer(signal: np.ndarray, heard: Heard, recogniser: SpeechRecogniser, warned: int) -> None:
    """A voice taken for the patient by rule that mostly asks questions is the interviewer:
    the next voice that answers is taken instead (said, not confident), or, when none does,
    ``heard.interviewer`` says why nothing of that voice is scored. ``warned``: how many of
    ``heard.warnings`` came before the first voice's recognition (what came after is about it)."""
    asked, turns = _questions(heard)
    if turns < MIN_JUDGED_TURNS or asked < INTERVIEWER_QUESTION_SHARE * turns or heard.participant is None:
        return
    first = heard.participant
    why = f"{label(first)} asks questions in {asked} of its {turns} recognised turns"
    for other in range(heard.speakers):
        if other == first:
            continue
        trial = Heard(speakers=heard.speakers, labelled_turns=heard.labelled_turns)
        _take_speaker(trial, other)
        recognise(signal, trial, recogniser)
        other_asked, other_turns = _questions(trial)
        if trial.utterances and other_asked < INTERVIEWER_QUESTION_SHARE * other_turns:
            _take_speaker(heard, other)
            heard.utterances, heard.recognition = trial.utterances, trial.recognition
            heard.timings_ms["recognition"] += trial.timings_ms.get("recognition", 0.0)
            heard.warnings = [w for w in heard.warnings[:warned] if w != heard.choice_warning] + trial.warnings
            assert heard.selection is not None
            heard.selection = Selection(
                kind="speaker",
                rule=f"the speaker who answers ({why}: it sounds like the interviewer)",
                confident=False,
                candidates=[
                    c.model_copy(update={"chosen": c.name == label(other)}) for c in heard.selection.candidates
                ],
            )
            heard.choice_warning = (
                f"the patient was taken to be {label(other)}, the speaker who answers, although {label(first)} "
                f"speaks more ({why}); if that is wrong, set participant_speaker as inputs.speakers names them"
            )
            heard.warnings.append(heard.choice_warning)
            return
    who = "the only voice heard" if heard.speakers == 1 else "no voice heard answers like a patient:"
    heard.interviewer = (
        f"{who} sounds like the interviewer ({why}); its speech and words were not scored as the "
        f"patient's (set participant_speaker to {label(first)} to analyse it anyway)"
    )


def mean_token_confidence(pieces: Sequence[TimedText]) -> float:
    """The token-weighted mean probability of recognised pieces (0 when none has tokens)."""
    scored = [p.recognised for p in pieces if p.recognised.confidence is not None]
    tokens = sum(r.tokens for r in scored)
    return sum(r.confidence * r.tokens for r in scored) / tokens if tokens else 0.0


def recognise(signal: np.ndarray, heard: Heard, recogniser: SpeechRecogniser) -> None:
    """Step 3: the patient's turns through speech-to-text, into ``heard.utterances``."""
    started = time.perf_counter()
    spans = [(s, e) for s, e in heard.turns if e - s >= MIN_RECOGNISED_TURN_S]
    pieces = recogniser.transcribe_segments(signal, spans) if spans else []
    speaker = label(heard.participant) if heard.participant is not None else None
    said = [piece for piece in pieces if piece.text.strip()]
    for piece in said:
        heard.utterances.append(
            Utterance(text=piece.text.strip(), start_s=piece.start_s, end_s=piece.end_s, speaker=speaker)
        )
    capped = sum(int(piece.recognised.capped) for piece in said)
    heard.recognition = {
        "segments": float(len(heard.utterances)),
        "words": float(sum(word_count(u.text) for u in heard.utterances)),
        "confidence": round(mean_token_confidence(said), 4),
        "seconds": round(float(sum(e - s for s, e in spans)), 2),
    }
    if capped:
        heard.warnings.append(
            f"speech recognition stopped early in {capped} of {len(pieces)} turns (token cap): some words were lost"
        )
    heard.timings_ms["recognition"] = 1000 * (time.perf_counter() - started)


def label_utterances(utterances: Sequence[Utterance], heard: Heard) -> list[Utterance]:
    """A timed transcript without speaker labels, labelled from the separated turns: each
    utterance goes to the speaker who talks most inside its times (unlabelled when nobody does)."""
    out = []
    for u in utterances:
        if u.start_s is None or u.end_s is None:
            out.append(u)
            continue
        overlap = np.zeros(max(heard.speakers, 1))
        for start, end, speaker in heard.labelled_turns:
            overlap[speaker] += max(0.0, min(end, u.end_s) - max(start, u.start_s))
        who = label(int(np.argmax(overlap))) if overlap.max() > 0 else None
        out.append(Utterance(text=u.text, start_s=u.start_s, end_s=u.end_s, speaker=who))
    return out


def hear_sample(
    signal: np.ndarray, recogniser: SpeechRecogniser, spans: Sequence[Span], sample_s: float
) -> tuple[list[str], float, float]:
    """The words of the first ``sample_s`` seconds of ``spans`` (the patient's turns, or the
    whole recording when they are unknown), their mean token probability and the seconds heard:
    what the transcript check holds a sent transcript against."""
    picked: list[Span] = []
    covered = 0.0
    for start, end in spans:
        remaining = sample_s - covered
        if remaining < MIN_RECOGNISED_TURN_S:  # also ends a float residue of the sum, never a negative span
            break
        if end - start < MIN_RECOGNISED_TURN_S:
            continue
        end = min(end, start + remaining)
        picked.append((start, end))
        covered += end - start
    pieces = recogniser.transcribe_segments(signal, picked) if picked else []
    return normalised_words(p.text for p in pieces), mean_token_confidence(pieces), covered
