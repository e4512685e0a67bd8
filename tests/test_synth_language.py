"""The synthetic participant's words: symptom talk follows the items, sentences are varied and well formed."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from app.contract import PHQ8_ITEMS
from training.synth.language import MAX_WORDS, MIN_WORDS, participant_sentences

SEEDS = range(6)

# everyday words a reader would take as complaints about each symptom (none says the symptom is fine)
SYMPTOM_WORDS: dict[str, str] = {
    "interest": r"pointless|bothered|\binterests?\b|motivation|\bfun\b|enjoyed anything|(don't|do not) enjoy"
    r"|(don't|do not) care|say no|excuses|doing anything",
    "mood": r"\bsad\b|hopeless|\bdown\b|depressed|\blow\b|crying|\bempty\b|heavy|ever get better"
    r"|feel good about",
    "sleep": r"asleep|awake|trouble sleeping|toss|oversleep|\bnap\b|slept|until noon|sleep has been|sleeping"
    r" (a bit|slightly|more|way|far|a lot|too)|out of bed|my bed|sleep at all|sleep most|still feel tired",
    "energy": r"tired|exhausted|drained|worn out|wear me out|the energy|lie down",
    "appetite": r"skip meals|weight|pounds|taste|forget to eat|snack|overeat|junk food"
    r"|eating (a bit|slightly|more|way|far|too)|appetite has been|stop eating|barely eat|meal in days"
    r"|feel like eating|upset",
    "self_worth": r"failure|guilty|useless|blame myself|not good enough|disappointed in myself|let my|ruined"
    r"|good at anything",
    "concentration": r"struggle to focus|concentrate|forgetful|wandering|same page|lose track|decisions"
    r"|foggy",
    "psychomotor": r"\bslow|sluggish|\bmud\b|forever|restless|fidget|pacing|\bpace\b|sit still|on edge"
    r"|my hands|barely move|effort|one place",
}
FIRST_PERSON = re.compile(r"\b(I|me|my|myself)\b", re.IGNORECASE)
NEGATION = re.compile(
    r"\b(not|no|never|nothing|nobody|cannot|can't|don't|doesn't|didn't|haven't|isn't|won't)\b", re.IGNORECASE
)


def _sentences(items: np.ndarray, seed: int, n: int = 300) -> list[str]:
    return list(itertools.islice(participant_sentences(np.asarray(items), np.random.default_rng(seed)), n))


def _share(sentences: list[str], pattern: str) -> float:
    return float(np.mean([re.search(pattern, s, re.IGNORECASE) is not None for s in sentences]))


@pytest.mark.parametrize("item", PHQ8_ITEMS)
def test_symptom_words_rise_with_the_item_score(item: str) -> None:
    shares = []
    for score in range(4):
        items = np.zeros(8, dtype=int)
        items[PHQ8_ITEMS.index(item)] = score
        shares.append(np.mean([_share(_sentences(items, seed), SYMPTOM_WORDS[item]) for seed in SEEDS]))
    assert all(a < b for a, b in itertools.pairwise(shares)), shares
    assert shares[0] < 0.03 and shares[3] > 0.1, shares


def test_severity_brings_more_first_person_and_negated_sentences() -> None:
    def rates(items: np.ndarray) -> tuple[float, float]:
        sentences = [s for seed in SEEDS for s in _sentences(items, seed)]
        first = np.mean([len(FIRST_PERSON.findall(s)) / len(s.split()) for s in sentences])
        negated = np.mean([NEGATION.search(s) is not None for s in sentences])
        return float(first), float(negated)

    none_first, none_negated = rates(np.zeros(8, dtype=int))
    severe_first, severe_negated = rates(np.full(8, 3))
    assert severe_first > 1.25 * none_first
    assert severe_negated > none_negated + 0.15


def test_text_tells_the_severity_band_only_roughly() -> None:
    """A keyword reader's guess correlates with the total across people, but far from perfectly."""
    rng = np.random.default_rng(42)
    totals, guesses = [], []
    any_symptom = "|".join(f"(?:{p})" for p in SYMPTOM_WORDS.values())
    for person in range(80):
        items = rng.integers(0, 4, 8) * (rng.random(8) < rng.random())  # spread totals from 0 to 24
        totals.append(items.sum())
        guesses.append(_share(_sentences(items, 1000 + person, 40), any_symptom))
    correlation = np.corrcoef(np.argsort(np.argsort(totals)), np.argsort(np.argsort(guesses)))[0, 1]
    assert 0.5 < correlation < 0.97


def test_sentences_are_well_formed_and_varied() -> None:
    everyone: list[str] = []
    for seed in SEEDS:
        items = np.random.default_rng(seed).integers(0, 4, 8)
        sentences = _sentences(items, seed)
        everyone += sentences
        assert len(set(sentences)) > 0.7 * len(sentences)
    for sentence in everyone:
        assert MIN_WORDS <= len(sentence.split()) <= MAX_WORDS, sentence
        assert sentence[0].isupper() and sentence.endswith(".") and sentence.count(".") == 1, sentence
        assert not re.search(r"[{}<>]|\s[,.]|\s{2}|,,", sentence), sentence
    assert len(set(everyone)) > 1000
    lengths = [len(s.split()) for s in everyone]
    assert np.std(lengths) > 2.5  # short and long answers both occur


def test_people_differ_in_vocabulary_and_verbosity() -> None:
    items = np.array([1, 1, 1, 1, 1, 1, 1, 1])
    vocabularies = [set(" ".join(_sentences(items, seed)).lower().split()) for seed in SEEDS]
    overlaps = [len(a & b) / len(a | b) for a, b in itertools.combinations(vocabularies, 2)]
    assert max(overlaps) < 0.8
    mean_lengths = [np.mean([len(s.split()) for s in _sentences(items, seed)]) for seed in SEEDS]
    assert max(mean_lengths) - min(mean_lengths) > 1.0


def test_deterministic_for_a_seed() -> None:
    items = np.array([2, 0, 1, 3, 0, 2, 1, 0])
    assert _sentences(items, 7, 50) == _sentences(items, 7, 50)
    assert _sentences(items, 7, 50) != _sentences(items, 8, 50)


def test_rejects_bad_items() -> None:
    with pytest.raises(ValueError):
        next(participant_sentences(np.array([0, 1, 2, 3, 4, 0, 0, 0]), np.random.default_rng(0)))
    with pytest.raises(ValueError):
        next(participant_sentences(np.zeros(7, dtype=int), np.random.default_rng(0)))
