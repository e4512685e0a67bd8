"""The speech stage's cost: speaker separation plus speech recognition of the patient's turns,
CPU seconds per audio second on one thread, and the memory peak for an hour of audio.

    python -m bench.speech_stage [--minutes 5] [--hour] [--quality] [--json out.json]

Run from the repository root (reads model_store/voice_encoder/1 and speech_to_text/1, speaks
with espeak-ng through tests.interviews). In one process, one ONNX Runtime thread each:

- a generated two-voice interview (tests.interviews, clinician en+anika, patient en-us)
  repeated to ``--minutes``: ``app.speech.hearing.hear`` as the pipeline runs it (separation,
  then recognition of the patient's turns), CPU seconds (``time.process_time``) per audio
  second for each step and together, attribution accuracy of the separation, WER of the patient's
  recognised words;
- with ``--hour``: speaker separation alone on 60 minutes of the same interview (recognition
  scales with the patient's speech, measured above), and the peak RSS (``ru_maxrss``) growth
  it causes.

- with ``--quality``: speaker attribution and WER on the generated test set, every voice pair
  of tests.interviews.VOICE_PAIRS, each as a plain interview (pauses between turns) and as a
  conversational one (questions cutting 0.4 s into the answers, "mm hmm" over every answer):
  speakers found, whether the patient was the speaker picked, attribution accuracy (frames where two
  voices overlap left out), the patient's seconds against the truth, and the WER of the
  patient's recognised words (the recogniser hears the back-channels too).

The target (issue 16): both steps together <= 0.1 CPU-s per audio second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

from app.runtime import RuntimeConfig
from app.speech import hearing
from app.speech.turns import speaker_turns
from tests.asr_clips import word_error_rate
from tests.interviews import PATIENT, VOICE_PAIRS, attribution_accuracy, interview

MODEL_STORE = Path(__file__).resolve().parents[1] / "model_store"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def repeated(minutes: float) -> tuple[np.ndarray, list[tuple[float, float, int]], str]:
    base = interview("en+anika", "en-us", exchanges=6)
    copies = max(1, int(np.ceil(minutes * 60 / (base.samples.size / 16000))))
    duration = base.samples.size / 16000
    turns = [(a + k * duration, b + k * duration, w) for k in range(copies) for a, b, w in base.turns]
    return np.tile(base.samples, copies), turns, " ".join([base.patient_text] * copies)


def quality(models: hearing.SpeechModels) -> list[dict]:
    """Attribution and WER per voice pair, plain and conversational (see the module docstring)."""
    rows = []
    for clinician, patient in VOICE_PAIRS:
        for style, options in (("plain", {}), ("conversational", {"overlap_s": 0.4, "backchannels": True})):
            spoken = interview(clinician, patient, exchanges=6, **options)
            heard = hearing.hear(
                spoken.samples, models, separation_skipped=None, recognition_skipped=None, participant_speaker=None
            )
            separated = speaker_turns(spoken.samples, models.voice_encoder)
            true_patient = spoken.seconds(PATIENT)
            patient_frames = np.concatenate(
                [np.arange(round(a * 100), round(b * 100)) for a, b in spoken.spans(PATIENT)]
            )
            labels = separated.frame_labels[patient_frames[patient_frames < separated.frame_labels.size]]
            majority = int(np.bincount(labels[labels >= 0]).argmax()) if (labels >= 0).any() else -1
            rows.append(
                {
                    "voices": f"{clinician} / {patient}",
                    "style": style,
                    "speakers": heard.speakers,
                    "patient_picked": heard.participant == majority,
                    "attribution_accuracy": round(attribution_accuracy(separated.frame_labels, spoken.turns), 4),
                    "patient_seconds_error": round(sum(b - a for a, b in heard.turns) / true_patient - 1, 3),
                    "patient_wer": round(
                        word_error_rate(spoken.patient_text, " ".join(u.text for u in heard.utterances)), 3
                    ),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--hour", action="store_true", help="also separate 60 minutes and report the memory peak")
    parser.add_argument("--quality", action="store_true", help="also attribution and WER on every voice pair")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    rss_start = peak_rss_mb()
    started = time.perf_counter()
    models = hearing.SpeechModels.load(MODEL_STORE, RuntimeConfig())
    models.warm()
    load_s = time.perf_counter() - started
    rss_loaded = peak_rss_mb()

    signal, turns, patient_text = repeated(args.minutes)
    audio_s = signal.size / 16000
    cpu0 = time.process_time()
    heard = hearing.hear(
        signal, models, separation_skipped=None, recognition_skipped="measured next", participant_speaker=None
    )
    cpu1 = time.process_time()
    hearing.recognise(signal, heard, models.recogniser)
    cpu2 = time.process_time()
    recognised = " ".join(u.text for u in heard.utterances)
    separated = speaker_turns(signal, models.voice_encoder)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "audio_s": round(audio_s, 1),
        "speakers": heard.speakers,
        "attribution_accuracy": round(attribution_accuracy(separated.frame_labels, turns), 4),
        "separation_cpu_s_per_audio_s": round((cpu1 - cpu0) / audio_s, 4),
        "recognition_cpu_s_per_audio_s": round((cpu2 - cpu1) / audio_s, 4),
        "speech_stage_cpu_s_per_audio_s": round((cpu2 - cpu0) / audio_s, 4),
        "patient_wer": round(word_error_rate(patient_text, recognised), 3),
        "model_load_s": round(load_s, 2),
        "rss_mb": {"start": round(rss_start), "models_loaded": round(rss_loaded), "after_stage": round(peak_rss_mb())},
    }
    if args.hour:
        hour, _, _ = repeated(60)
        before = peak_rss_mb()
        cpu = time.process_time()
        found = speaker_turns(hour, models.voice_encoder)
        result["hour"] = {
            "audio_s": round(hour.size / 16000),
            "speakers": found.count.speakers,
            "separation_cpu_s_per_audio_s": round((time.process_time() - cpu) / (hour.size / 16000), 4),
            "signal_mb": round(hour.nbytes / 2**20),
            "peak_rss_growth_mb": round(peak_rss_mb() - before),
        }
    if args.quality:
        rows = quality(models)
        result["quality"] = {
            style: {
                "interviews": len(mine := [r for r in rows if r["style"] == style]),
                "patient_picked": sum(r["patient_picked"] for r in mine),
                "mean_attribution_accuracy": round(float(np.mean([r["attribution_accuracy"] for r in mine])), 4),
                "mean_abs_patient_seconds_error": round(
                    float(np.mean([abs(r["patient_seconds_error"]) for r in mine])), 3
                ),
                "mean_patient_wer": round(float(np.mean([r["patient_wer"] for r in mine])), 3),
            }
            for style in ("plain", "conversational")
        }
        result["quality_rows"] = rows
    line = json.dumps(result)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
