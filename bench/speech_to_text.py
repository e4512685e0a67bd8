"""Speech-to-text cost and accuracy on espeak-ng speech: CPU seconds per audio second, peak RSS, WER.

    python -m bench.speech_to_text [--threads 1] [--long-seconds 50] [--max-segment-s 30] [--json out.json]

Run from the repository root (it reads model_store/speech_to_text/1 and speaks with
espeak-ng through tests.media). Measures, in one process:

- each sentence of tests.asr_clips.SENTENCES on its own (about 4.5 s each): WER per sentence
  and pooled over all words;
- one long clip, the sentences back to back (0.5 s apart) until ``--long-seconds``: WER and
  CPU seconds (``time.process_time``, the whole process) per audio second, with the pieces
  the recogniser cut it into;
- model load time, peak RSS (``ru_maxrss``) before loading, after loading and at the end.

espeak-ng is a clean, synthetic voice: the WER says the pipeline works, not how it does on
conversational or depressed speech.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

from app.model_store import speech_to_text_dir
from app.runtime import RuntimeConfig
from app.speech.recognition import SAMPLE_RATE, SpeechRecogniser
from tests.asr_clips import SENTENCES, spoken, spoken_clip, word_errors

MODEL_STORE = Path(__file__).resolve().parents[1] / "model_store"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads per session")
    parser.add_argument("--long-seconds", type=float, default=50.0, help="length of the long clip (at least)")
    parser.add_argument("--max-segment-s", type=float, default=None, help="the recogniser's cut limit")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    # speak everything first: espeak-ng and the resampler are not what is measured
    singles = [spoken(sentence) for sentence in SENTENCES]
    count, length = 0, 0.0
    while length < args.long_seconds and count < len(SENTENCES):
        length += len(singles[count]) / SAMPLE_RATE + 0.5
        count += 1
    long_clip, _ = spoken_clip(SENTENCES[:count])
    long_reference = " ".join(SENTENCES[:count])
    rss_before = peak_rss_mb()

    started = time.perf_counter()
    options = {} if args.max_segment_s is None else {"max_segment_s": args.max_segment_s}
    recogniser = SpeechRecogniser(
        speech_to_text_dir(MODEL_STORE), RuntimeConfig(intra_op_threads=args.threads), **options
    )
    recogniser.warm()
    load_s = time.perf_counter() - started
    rss_loaded = peak_rss_mb()

    per_sentence = []
    errors = total = 0
    cpu = audio = 0.0
    for sentence, signal in zip(SENTENCES, singles, strict=True):
        started = time.process_time()
        heard = recogniser.transcribe(signal)
        cpu += time.process_time() - started
        audio += heard.seconds
        e, n = word_errors(sentence, heard.text)
        errors, total = errors + e, total + n
        per_sentence.append(
            {"wer": round(e / n, 3), "confidence": round(heard.confidence or 0, 3), "heard": heard.text}
        )

    started_wall, started = time.perf_counter(), time.process_time()
    heard_long = recogniser.transcribe(long_clip)
    long_cpu = time.process_time() - started
    long_wall = time.perf_counter() - started_wall
    long_errors, long_total = word_errors(long_reference, heard_long.text)

    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs (shared)",
        "intra_op_threads": args.threads,
        "max_segment_s": recogniser.max_segment_s,
        "load_and_warm_s": round(load_s, 2),
        "sentences": {
            "count": len(SENTENCES),
            "audio_s": round(audio, 1),
            "wer_pooled": round(errors / total, 3),
            "words": total,
            "cpu_s_per_audio_s": round(cpu / audio, 4),
            "per_sentence": per_sentence,
        },
        "long_clip": {
            "sentences": count,
            "audio_s": round(heard_long.seconds, 1),
            "pieces": [[round(a, 2), round(b, 2)] for a, b in heard_long.pieces],
            "wer": round(long_errors / long_total, 3),
            "words": long_total,
            "tokens": heard_long.tokens,
            "capped": heard_long.capped,
            "confidence": round(heard_long.confidence or 0, 3),
            "cpu_s_per_audio_s": round(long_cpu / heard_long.seconds, 4),
            "wall_s_per_audio_s": round(long_wall / heard_long.seconds, 4),
        },
        "peak_rss_mb": {
            "before_models": round(rss_before, 1),
            "after_load": round(rss_loaded, 1),
            "end": round(peak_rss_mb(), 1),
        },
    }
    s, lc, rss = figures["sentences"], figures["long_clip"], figures["peak_rss_mb"]
    print(f"threads {args.threads}, max_segment_s {recogniser.max_segment_s}, load+warm {figures['load_and_warm_s']} s")
    print(
        f"{s['count']} sentences, {s['audio_s']} s: WER {s['wer_pooled']} over {s['words']} words, "
        f"{s['cpu_s_per_audio_s']} CPU-s per audio-s"
    )
    print(
        f"long clip {lc['audio_s']} s ({lc['sentences']} sentences) in {len(lc['pieces'])} pieces {lc['pieces']}: "
        f"WER {lc['wer']}, {lc['cpu_s_per_audio_s']} CPU-s / {lc['wall_s_per_audio_s']} wall-s per audio-s, "
        f"capped {lc['capped']}"
    )
    print(f"peak RSS MB: before models {rss['before_models']}, after load {rss['after_load']}, end {rss['end']}")
    print(f"long clip heard: {heard_long.text}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
