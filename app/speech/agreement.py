"""Does a transcript belong to the recording it came with? Words heard against words written.

A transcript of another session (another patient's, a template, a mix-up in the caller's
files) has every quality figure of the patient's own, so no gate in the fusion network can
see it (README, version 4 and 5 robustness tables). What tells it apart is that speech
recognition of the recording does not hear its words. These functions are pure: the caller
recognises a sample of the patient's speech and passes the words.

The figure is the share of heard words that fall in runs of at least ``MIN_RUN`` consecutive
words that the transcript also has, in the same order (``difflib`` matching blocks): single
common words ("i", "the", "sleep") match across any two interviews on one topic, runs of two
or more rarely do unless the same sentences were said.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher

# words in a run shorter than this are not counted as agreement
MIN_RUN = 2
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def normalised_words(texts: Iterable[str]) -> list[str]:
    """Lower-case words of ``texts`` in order, apostrophes dropped ("don't" -> "dont"),
    digits and punctuation ignored: how speech recognition and a typist may differ."""
    return [word.replace("'", "") for text in texts for word in _WORD.findall(text.lower())]


@dataclass(frozen=True)
class Agreement:
    heard_words: int  # words of the recognised sample
    matched_words: int  # of those, words in runs of >= MIN_RUN shared with the transcript in order

    @property
    def share(self) -> float:
        return self.matched_words / self.heard_words if self.heard_words else 0.0


def agreement(heard: list[str], written: list[str], min_run: int = MIN_RUN) -> Agreement:
    """How many of the ``heard`` words the ``written`` words say too, in runs of ``min_run`` or more.

    Order matters (the matching is one monotone alignment), so a transcript that holds the
    same words scrambled agrees less than one that holds the same sentences."""
    if min_run < 1:
        raise ValueError("min_run must be at least 1")
    if not heard or not written:
        return Agreement(heard_words=len(heard), matched_words=0)
    blocks = SequenceMatcher(None, written, heard, autojunk=False).get_matching_blocks()
    matched = sum(block.size for block in blocks if block.size >= min_run)
    return Agreement(heard_words=len(heard), matched_words=matched)


# fewer heard words than this are too few to judge a transcript by (30 s of speech gave 58-116)
MIN_JUDGED_WORDS = 20


@dataclass(frozen=True)
class Verdict:
    """The check's outcome: ``matches`` None when it could not judge (``reason`` says why)."""

    matches: bool | None
    reason: str | None = None


def judge(found: Agreement, confidence: float, seconds: float, min_share: float, min_confidence: float) -> Verdict:
    """Whether a transcript whose words ``found`` this agreement with the heard sample is the
    recording's: judged only on enough words heard with enough confidence. The reasons quote
    no word of either."""
    if found.heard_words < MIN_JUDGED_WORDS:
        return Verdict(
            None,
            f"speech recognition heard {found.heard_words} words in {seconds:.0f} s of the patient's speech, too "
            f"few to check the transcript against (at least {MIN_JUDGED_WORDS})",
        )
    if confidence < min_confidence:
        return Verdict(
            None,
            f"speech recognition was too unsure of the words it heard to check the transcript against them "
            f"(confidence {confidence:.2f}, at least {min_confidence:.2f})",
        )
    if found.share < min_share:
        return Verdict(
            False,
            f"the transcript does not say what the recording says: {found.share:.0%} of the {found.heard_words} "
            f"words heard in {seconds:.0f} s of the patient's speech are in it (at least {min_share:.0%} expected), "
            "so it may be another session's; send the recording without a transcript to have the patient's words "
            "recognised, or check_transcript=false if it is right",
        )
    return Verdict(True)
