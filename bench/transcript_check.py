"""Does the words-heard check tell a patient's own transcript from another person's?

    python -m bench.transcript_check [--people 24] [--seed 5150] [--sample-s 60] [--json out.json]

For ``--people`` synthetic participants (``training.synth``: template answers whose wording
follows the items, each person's own espeak-ng voice, rate and noise floor), one session each
of the sample length plus a margin; speech recognition (Moonshine, as served, one thread) of
the first ``--sample-s`` seconds of the participant's turns; then the share of heard words
that ``app.speech.agreement`` finds in runs shared with

- the participant's own transcript (what was said),
- the same transcript with 60 % of its words lost (the robustness suite's "words lost"),
- the next participant's transcript (the robustness suite's "another person's text": same
  generator, same topics, another person's answers).

Prints each distribution (min, 10th, 50th, 90th percentile, max) and the recognition cost, and
with ``--json`` writes them. The threshold the service uses (``transcript_check_min_share``)
must sit between the own transcripts' low tail and the other persons' high tail.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from app.model_store import speech_to_text_dir
from app.runtime import RuntimeConfig
from app.speech.agreement import agreement, normalised_words
from app.speech.hearing import hear_sample
from app.speech.recognition import SpeechRecogniser

STORE = Path("model_store")


def _sessions(people: int, seed: int, seconds: float) -> list[tuple[np.ndarray, list]]:
    from training.synth.language import participant_sentences
    from training.synth.participants import draw_participants
    from training.synth.speech import speak_session

    out = []
    for person in draw_participants(people, seed=seed, first_pid=2_000_000):
        words_rng, voice_rng = np.random.default_rng([seed, person.pid]).spawn(2)
        spoken = speak_session(participant_sentences(person.items, words_rng), person.items, seconds, voice_rng)
        out.append((spoken.signal, spoken.utterances))
    return out


def _summary(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {
        "min": round(float(a.min()), 3),
        "p10": round(float(np.percentile(a, 10)), 3),
        "p50": round(float(np.percentile(a, 50)), 3),
        "p90": round(float(np.percentile(a, 90)), 3),
        "max": round(float(a.max()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=24)
    parser.add_argument("--seed", type=int, default=5150)
    parser.add_argument("--sample-s", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from training.synth.corpus import drop_words

    recogniser = SpeechRecogniser(speech_to_text_dir(STORE), RuntimeConfig(intra_op_threads=1, inter_op_threads=1))
    sessions = _sessions(args.people, args.seed, args.sample_s * 1.6)
    heard_words, rows = [], []
    cpu_s, audio_s = 0.0, 0.0
    confidences = []
    for signal, utterances in sessions:
        # as the service hears it: the participant's turns (here the generator's), the first seconds
        started = time.process_time()
        words, confidence, seconds = hear_sample(
            signal, recogniser, [(u.start_s, u.end_s) for u in utterances], args.sample_s
        )
        cpu_s += time.process_time() - started
        audio_s += seconds
        heard_words.append(words)
        confidences.append(confidence)
    rng = np.random.default_rng(args.seed)
    for i, (_, utterances) in enumerate(sessions):
        own = [u.text for u in utterances]
        other = [u.text for u in sessions[(i + 1) % len(sessions)][1]]
        lost = [drop_words(t, 0.6, rng) for t in own]
        heard = heard_words[i]
        rows.append(
            {
                "heard_words": len(heard),
                "own": agreement(heard, normalised_words(own)).share,
                "own_60_percent_lost": agreement(heard, normalised_words(lost)).share,
                "other_person": agreement(heard, normalised_words(other)).share,
            }
        )
    report = {
        "people": args.people,
        "seed": args.seed,
        "sample_s": args.sample_s,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "recognition_cpu_s_per_audio_s": round(cpu_s / audio_s, 4),
        "heard_words": _summary([r["heard_words"] for r in rows]),
        "recognition_confidence": _summary(confidences),
        "share": {key: _summary([r[key] for r in rows]) for key in ("own", "own_60_percent_lost", "other_person")},
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**report, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
