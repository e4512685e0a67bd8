"""Speaker labels: how they are normalised, which mark a clinician, and who the participant is.

Labels are matched and judged on a normalised form: titles (Dr., Prof., Mr., ...),
credentials (PsyD, PhD, MD, LCSW, LMFT, RN, ...), pronoun parentheses ("(he/him)") and
trailing commas removed, casefolded, whitespace collapsed. A label that is a phone number
("+1 415 555 0134") is a dial-in caller: a real speaker, usually the patient on a video
visit. Titles, credentials and role words (interviewer, therapist, doctor, ...) mark the
clinician side, which never wins the heuristic.

``select_participant`` returns a ``SpeakerSelection``: the chosen labels, the rule in
words, whether the evidence is strong, and per-speaker words and seconds. Its messages
and warnings never quote a label (labels are names of people): speakers are referred to
by position, "speaker 2 of 3", in order of first appearance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.features.transcript.utterance import TranscriptError, Utterance, word_count

# Words of a label that name the patient, and ones that name the interviewing side
# (DAIC-WOZ's virtual interviewer is "Ellie").
PARTICIPANT_LABELS = frozenset({"participant", "patient", "client", "interviewee", "respondent"})
INTERVIEWER_LABELS = frozenset(
    {
        "ellie",
        "interviewer",
        "therapist",
        "clinician",
        "doctor",
        "counselor",
        "counsellor",
        "psychiatrist",
        "psychologist",
        "psychotherapist",
        "nurse",
        "provider",
        "clinic",
    }
)
# Titles before a name; the clinical ones mark the clinician.
CLINICAL_TITLES = frozenset({"dr", "doctor", "prof", "professor"})
COURTESY_TITLES = frozenset({"mr", "mrs", "ms", "mx", "miss"})
# Credentials after a name. Those that are also ordinary words or names ("Do", "Ma") count
# only after a comma ("Jane Doe, DO").
CREDENTIALS = frozenset(
    {
        "psyd", "phd", "md", "lcsw", "licsw", "lmft", "lpc", "lpcc", "lmhc", "lcpc", "aprn", "pmhnp",
        "dnp", "msw", "bcba", "lcadc", "mft", "mbbs", "frcpsych", "rn", "np", "pa-c", "edd", "psychd",
    }
)  # fmt: skip
CREDENTIALS_AFTER_COMMA = CREDENTIALS | {"do", "ma", "ms", "msc", "pa", "med", "lmsw", "lsw", "ba", "bsc"}

# two speakers: the one with more words is taken only this clearly; nearer, a warning says the choice is weak
CLEAR_WORD_RATIO = 1.5

# Words that open an English question. "when", "what" and "how" also open statements ("When
# it rains I stay in"), so only the auxiliaries and the unambiguous wh-words count without a
# question mark; speech recognition often drops the mark ("How have you been sleeping").
QUESTION_OPENINGS = frozenset(
    {
        "how", "why", "where", "who", "whom", "which", "do", "does", "did", "are", "is", "was",
        "were", "can", "could", "would", "will", "have", "has", "shall", "should", "tell",
    }
)  # fmt: skip
# fillers before a question's first word ("And how is your appetite?")
_FILLERS = frozenset({"and", "so", "okay", "ok", "well", "now", "right", "alright", "um", "uh"})
_WORD = re.compile(r"[a-z']+")

_PRONOUNS = re.compile(r"\(\s*[A-Za-z]+(?:\s*/\s*[A-Za-z]+)+\s*\)")
_PHONE = re.compile(r"^\+?[\d\s().-]+$")
_MIN_PHONE_DIGITS = 7
_WORD = re.compile(r"[^\W_]+(?:[.'’-][^\W_]+)*\.?")


def is_phone_number(label: str) -> bool:
    """A dial-in caller's label: digits, spaces and + ( ) . - only, with at least 7 digits."""
    return bool(_PHONE.match(label)) and sum(c.isdigit() for c in label) >= _MIN_PHONE_DIGITS


@dataclass(frozen=True)
class LabelParts:
    """A label taken apart: the name that identifies the speaker, and what marks a clinician."""

    name: str  # normalised: casefolded, single spaces, no titles, credentials or pronouns
    clinician_markers: tuple[str, ...]  # titles, credentials and role words found (normalised)
    plausible: bool  # reads as a speaker label at all (used to tell "Name: text" from prose)


def label_parts(label: str) -> LabelParts:
    """Normalise a speaker label and find its clinician markers."""
    text = " ".join(label.split())
    if is_phone_number(text):
        digits = re.sub(r"\D", "", text)
        return LabelParts(name=digits, clinician_markers=(), plausible=True)
    markers: list[str] = []
    text = _PRONOUNS.sub(" ", text)
    plausible = "(" not in text and ")" not in text
    # "Jane Smith, PsyD, LCSW" -> name "Jane Smith", credentials after the commas
    head, *tails = [part.strip() for part in text.split(",")]
    for tail in tails:
        if not tail:
            continue  # a trailing comma
        tokens = [t.casefold().strip(".") for t in tail.split()]
        if tokens and all(token in CREDENTIALS_AFTER_COMMA for token in tokens):
            markers.extend(tokens)
        else:
            plausible = False  # "Well, honestly: ..." is prose, not a label
    words = head.split()
    # a title alone ("Doctor:") is the name itself
    while len(words) > 1 and words[0].casefold().strip(".") in CLINICAL_TITLES | COURTESY_TITLES:
        title = words.pop(0).casefold().strip(".")
        if title in CLINICAL_TITLES:
            markers.append(title)
    while len(words) > 1 and words[-1].casefold().strip(".") in CREDENTIALS:
        markers.append(words.pop().casefold().strip("."))
    name = " ".join(w.casefold() for w in words)
    markers.extend(w for w in (word.strip(".") for word in name.split()) if w in INTERVIEWER_LABELS)
    if not words or len(words) > 4 or not all(_WORD.fullmatch(w) for w in words):
        plausible = False
    return LabelParts(name=name, clinician_markers=tuple(markers), plausible=plausible)


def is_clinician(label: str) -> bool:
    return bool(label_parts(label).clinician_markers)


def names_participant(label: str) -> bool:
    parts = label_parts(label)
    return not parts.clinician_markers and any(w in PARTICIPANT_LABELS for w in parts.name.split())


@dataclass(frozen=True)
class SpeakerStats:
    label: str  # as the transcript writes it
    words: int
    seconds: float | None  # summed turn durations; None when the transcript gives no end times for them
    utterances: int
    question_share: float  # share of the speaker's utterances that end with a question mark


@dataclass(frozen=True)
class SpeakerSelection:
    """Who was taken as the participant, by which rule, and how sure that is."""

    chosen: tuple[str, ...]
    rule: str
    confident: bool
    speakers: tuple[SpeakerStats, ...]  # every speaker, in order of first appearance
    warning: str | None = None  # set when not confident; refers to speakers by position only


def is_question(text: str) -> bool:
    """Whether an utterance reads as a question: it ends with "?" or opens with a question word."""
    if text.rstrip().endswith("?"):
        return True
    words = [w for w in _WORD.findall(text.lower()[:80]) if w not in _FILLERS]
    return bool(words) and words[0] in QUESTION_OPENINGS


def speaker_stats(speakers: Sequence[str], utterances: Sequence[Utterance]) -> tuple[SpeakerStats, ...]:
    words = dict.fromkeys(speakers, 0)
    seconds: dict[str, float | None] = dict.fromkeys(speakers, None)
    counts = dict.fromkeys(speakers, 0)
    questions = dict.fromkeys(speakers, 0)
    for utterance in utterances:
        label = utterance.speaker
        if label not in words:
            continue
        words[label] += word_count(utterance.text)
        counts[label] += 1
        questions[label] += is_question(utterance.text)
        if utterance.start_s is not None and utterance.end_s is not None:
            seconds[label] = (seconds[label] or 0.0) + (utterance.end_s - utterance.start_s)
    return tuple(
        SpeakerStats(
            label=label,
            words=words[label],
            seconds=None if seconds[label] is None else round(seconds[label], 3),
            utterances=counts[label],
            question_share=questions[label] / counts[label] if counts[label] else 0.0,
        )
        for label in speakers
    )


_HOW_TO_NAME = (
    "set participant_speaker to the patient's speaker label as the transcript writes it "
    "(case, spacing, titles, credentials and pronouns do not matter)"
)


def _position(label: str, speakers: Sequence[str]) -> str:
    return f"speaker {list(speakers).index(label) + 1} of {len(speakers)}"


def match_option(option: str, speakers: Sequence[str], fmt: str | None) -> tuple[str, ...]:
    """The labels that ``participant_speaker`` names: exact (casefolded, spaces collapsed) first, then normalised."""
    if not speakers:
        raise TranscriptError(
            "participant_speaker was given but the transcript has no speaker labels; leave it out to use every line",
            fmt,
        )
    wanted = " ".join(option.split()).casefold()
    exact = tuple(label for label in speakers if " ".join(label.split()).casefold() == wanted)
    if exact:
        return exact
    wanted_name = label_parts(option).name
    normalised = tuple(label for label in speakers if wanted_name and label_parts(label).name == wanted_name)
    if normalised:
        return normalised
    count = f"{len(speakers)} speaker label{'s' if len(speakers) != 1 else ''}"
    raise TranscriptError(f"participant_speaker matches none of the transcript's {count}; {_HOW_TO_NAME}", fmt)


def select_participant(
    speakers: Sequence[str], utterances: Sequence[Utterance], option: str | None, fmt: str | None
) -> SpeakerSelection | None:
    """The participant among ``speakers`` (None when there are none and no option was given).

    In order: the option ``participant_speaker``; labels naming the participant (participant,
    patient, client, ...); the only speaker without a clinician marker; of two remaining
    speakers, the one who says more words (an interviewer asks short prompts, the patient
    answers at length: in DAIC-WOZ the participant speaks several times Ellie's words),
    confident only at ``CLEAR_WORD_RATIO`` and when that speaker does not also ask the larger
    share of questions; otherwise a ``TranscriptError`` asking for ``participant_speaker``.
    """
    stats = speaker_stats(speakers, utterances)
    if option is not None:
        return SpeakerSelection(match_option(option, speakers, fmt), "the option participant_speaker", True, stats)
    if not speakers:
        return None
    named = tuple(label for label in speakers if names_participant(label))
    if named:
        return SpeakerSelection(named, "the speaker labelled participant, patient or client", True, stats)
    others = [label for label in speakers if not is_clinician(label)]
    if len(others) == 1:
        rule = (
            "the only speaker"
            if len(speakers) == 1
            else "the only speaker without an interviewer or clinician label (title, credential or role)"
        )
        return SpeakerSelection((others[0],), rule, True, stats)
    every_one_clinical = not others
    if every_one_clinical and len(speakers) == 1:
        raise TranscriptError(
            "the transcript's only speaker has an interviewer or clinician label; "
            f"if that is the patient, {_HOW_TO_NAME}",
            fmt,
        )
    candidates = list(speakers) if every_one_clinical else others
    if len(candidates) == 2:
        by_label = {s.label: s for s in stats}
        first, second = (by_label[label] for label in candidates)
        if first.words == second.words and first.question_share == second.question_share:
            raise TranscriptError(
                f"cannot tell which speaker is the participant: the two speakers say as many words; {_HOW_TO_NAME}",
                fmt,
            )
        if first.words != second.words:
            chosen, other = (first, second) if first.words > second.words else (second, first)
            ratio = chosen.words / other.words if other.words else float("inf")
            rule = "of two speakers, the one who says more words"
        else:  # as many words: the one who asks fewer questions (interviewers ask them)
            chosen, other = (first, second) if first.question_share < second.question_share else (second, first)
            ratio = 1.0
            rule = "of two speakers saying as many words, the one who asks fewer questions"
        if not every_one_clinical and len(speakers) > 2:
            rule += " (after leaving out the interviewer and clinician labels)"
        doubts = []
        if ratio < CLEAR_WORD_RATIO:
            doubts.append(
                "they say only about as many words as the other"
                if ratio < 1.05
                else f"they say only {ratio:.2f} times the other's words"
            )
        if chosen.question_share > other.question_share:
            doubts.append("they ask more of the questions")
        if every_one_clinical:
            doubts.append("every speaker has a clinician label")
        warning = None
        if doubts:
            where = _position(chosen.label, speakers)
            warning = (
                f"the participant was taken to be {where} by a weak rule ({rule}): {' and '.join(doubts)}; "
                f"if that is the interviewer, {_HOW_TO_NAME}"
            )
        return SpeakerSelection((chosen.label,), rule, not doubts, stats, warning)
    raise TranscriptError(
        f"cannot tell which speaker is the participant: the transcript has {len(speakers)} speakers and none is "
        f"labelled participant, patient or client; {_HOW_TO_NAME}",
        fmt,
    )
