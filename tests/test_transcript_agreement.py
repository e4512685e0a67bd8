"""app.speech.agreement: words heard against words written, and the verdict on a transcript."""

from __future__ import annotations

import pytest

from app.speech.agreement import MIN_JUDGED_WORDS, Agreement, agreement, judge, normalised_words
from tests.asr_clips import SENTENCES


def test_words_are_normalised_the_way_recognition_and_typists_differ() -> None:
    assert normalised_words(["I don't know, REALLY.", "It's 4 o'clock!"]) == [
        "i", "dont", "know", "really", "its", "oclock",
    ]  # fmt: skip


def test_the_same_sentences_agree_fully_and_other_sentences_hardly() -> None:
    said = normalised_words(SENTENCES[:6])
    assert agreement(said, said).share == 1.0
    # SENTENCES 6-11 repeat some of 0-5 nearly word for word (for recognition tests): 12 on do not
    other = normalised_words(SENTENCES[12:])
    assert agreement(said, other).share < 0.15


def test_single_shared_words_do_not_count_runs_do() -> None:
    heard = ["i", "feel", "tired", "in", "the", "morning"]
    # every word is in the transcript, but never two in a row in the same order
    scattered = ["morning", "the", "in", "tired", "feel", "i"]
    assert agreement(heard, scattered).share == 0.0
    assert agreement(heard, scattered, min_run=1).share > 0.0
    # the same words as a run: all agree
    assert agreement(heard, ["so", *heard, "today"]).matched_words == len(heard)


def test_recognition_errors_lower_the_share_but_leave_runs() -> None:
    said = normalised_words(SENTENCES[:4])
    misheard = [w if k % 5 else "uh" for k, w in enumerate(said)]  # one word in five wrong
    share = agreement(misheard, said).share
    assert 0.5 < share < 0.85


def test_nothing_heard_or_nothing_written_agrees_nowhere() -> None:
    assert agreement([], ["a", "b"]) == Agreement(0, 0)
    assert agreement(["a", "b"], []).share == 0.0
    with pytest.raises(ValueError):
        agreement(["a"], ["a"], min_run=0)


def test_the_verdict_judges_only_enough_confident_words_and_quotes_none() -> None:
    enough = MIN_JUDGED_WORDS
    assert judge(Agreement(enough, enough), 0.9, 30.0, 0.25, 0.55).matches is True
    refused = judge(Agreement(enough, 2), 0.9, 30.0, 0.25, 0.55)
    assert refused.matches is False and "10% of the 20 words" in refused.reason
    assert "check_transcript=false" in refused.reason
    few = judge(Agreement(enough - 1, 0), 0.9, 12.0, 0.25, 0.55)
    assert few.matches is None and "too few" in few.reason
    unsure = judge(Agreement(enough, 0), 0.4, 30.0, 0.25, 0.55)
    assert unsure.matches is None and "unsure" in unsure.reason
    # at the line: kept
    assert judge(Agreement(100, 25), 0.9, 30.0, 0.25, 0.55).matches is True
