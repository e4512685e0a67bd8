"""The audio part of a live session's running estimate, as the call grows.

    python -m bench.growing_audio [--minutes 10 30 60] [--repeats 3] [--json out.json]

For each call length, a WAV of that much espeak-ng speech (written as a live session writes
it) and, measured in the same run on the same file:

- baseline: what each running estimate did before the cache, and what /predict still does:
  decode the whole WAV (PyAV), ``audio_features`` and ``speech_bandwidth_hz`` on all of it;
- growing: ``growing_audio.update`` after the last 10 s arrived (the cache holding the frames
  of the call up to then), ``grown_features`` and the bandwidth on the newest samples.

Printed: seconds per estimate of each (median of the repeats), their ratio, and the cores an
estimate every 10 s of call takes (cost / 10 s). With ``--whole``, also a whole running estimate
(``Pipeline.interim``: probe, audio, windows, fusion, answer, in the real worker pool) on the
longest call, with and without the cache, so the rest of an estimate's cost shows too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from app.contract import AudioSpec
from app.features import audio, growing_audio

ESTIMATE_EVERY_S = 10.0


def speech(seconds: float, rate: int) -> np.ndarray:
    from tests.api.conftest import ANSWERS
    from tests.media import speech_signal

    parts = [speech_signal(sentence) for sentence in ANSWERS]
    one = np.concatenate(parts)
    return np.tile(one, int(np.ceil(seconds * rate / one.size)))[: round(seconds * rate)]


def baseline(wav: Path, spec: AudioSpec) -> float:
    started = time.perf_counter()
    signal = audio.decode_audio(wav, spec.sample_rate)
    audio.audio_features(signal, spec)
    audio.speech_bandwidth_hz(signal, spec.sample_rate)
    return time.perf_counter() - started


def growing(wav: Path, cache: Path, spec: AudioSpec) -> float:
    started = time.perf_counter()
    grown = growing_audio.update(wav, cache, spec)
    growing_audio.grown_features(grown, spec)
    audio.speech_bandwidth_hz(grown.tail, spec.sample_rate)
    return time.perf_counter() - started


def measure(minutes: float, repeats: int, folder: Path) -> dict[str, float]:
    from tests.media import GrowingWav

    spec = AudioSpec()
    signal = speech(60 * minutes, spec.sample_rate)
    last = round(ESTIMATE_EVERY_S * spec.sample_rate)
    wav_path = folder / f"call-{minutes:g}.wav"
    times_base, times_grow = [], []
    for repeat in range(repeats):
        wav, cache = GrowingWav(wav_path), folder / f"call-{minutes:g}-{repeat}.mel"
        wav.append(signal[:-last])
        growing_audio.update(wav.path, cache, spec)  # the estimates before this one filled the cache
        wav.append(signal[-last:])
        times_grow.append(growing(wav.path, cache, spec))
        wav.close()
        times_base.append(baseline(wav.path, spec))
        cache.unlink()
    base, grow = statistics.median(times_base), statistics.median(times_grow)
    return {
        "minutes": minutes,
        "baseline_s": round(base, 3),
        "growing_s": round(grow, 3),
        "speedup": round(base / grow, 1),
        "baseline_cores": round(base / ESTIMATE_EVERY_S, 3),
        "growing_cores": round(grow / ESTIMATE_EVERY_S, 3),
    }


def whole_estimates(minutes: float, repeats: int, folder: Path) -> dict[str, float]:
    import asyncio

    from app.config import Settings
    from app.metrics import Metrics
    from app.startup import running_services
    from app.upload.form import ReceivedFile, ReceivedForm
    from tests.media import GrowingWav

    spec = AudioSpec()
    signal = speech(60 * minutes, spec.sample_rate)
    last = round(ESTIMATE_EVERY_S * spec.sample_rate)
    spool = folder / "spool"
    spool.mkdir(exist_ok=True)

    def form(wav: Path, cache: Path | None) -> ReceivedForm:
        upload = ReceivedFile(wav.stat().st_size, "wav", "audio/wav", path=wav)
        return ReceivedForm(files={"audio": upload}, fields={"include_timeline": "true"}, audio_cache=cache)

    async def run() -> dict[str, float]:
        cached, decoded = [], []
        async with running_services(Settings(spool_dir=spool, providers=["cpu"]), Metrics()) as services:
            for repeat in range(repeats):
                wav, cache = GrowingWav(folder / f"whole-{repeat}.wav"), folder / f"whole-{repeat}.mel"
                wav.append(signal[:-last])
                await services.pipeline.interim(form(wav.path, cache), "bench")  # the earlier estimates
                wav.append(signal[-last:])
                started = time.perf_counter()
                await services.pipeline.interim(form(wav.path, cache), "bench")
                cached.append(time.perf_counter() - started)
                started = time.perf_counter()
                await services.pipeline.interim(form(wav.path, None), "bench")
                decoded.append(time.perf_counter() - started)
                wav.close()
        return {
            "minutes": minutes,
            "estimate_decoding_s": round(statistics.median(decoded), 3),
            "estimate_cached_s": round(statistics.median(cached), 3),
        }

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 30, 60])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--whole", action="store_true", help="also time whole running estimates")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows: list[dict[str, float]] = []
    whole: dict[str, float] | None = None
    with tempfile.TemporaryDirectory() as folder:
        for minutes in args.minutes:
            rows.append(measure(minutes, args.repeats, Path(folder)))
            print(json.dumps(rows[-1]), flush=True)
        if args.whole:
            whole = whole_estimates(max(args.minutes), args.repeats, Path(folder))
            print(json.dumps(whole), flush=True)
    print("| call | baseline (decode + features) | growing (cache) | ratio | cores at one estimate per 10 s |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['minutes']:g} min | {row['baseline_s']:.2f} s | {row['growing_s']:.3f} s | {row['speedup']:g}x "
            f"| {row['baseline_cores']:.3f} -> {row['growing_cores']:.3f} |"
        )
    if whole is not None:
        print(
            f"whole running estimate at {whole['minutes']:g} min: {whole['estimate_decoding_s']:.2f} s decoding "
            f"the call, {whole['estimate_cached_s']:.2f} s with the cache"
        )
    if args.json:
        args.json.write_text(json.dumps({"audio": rows, "whole": whole}, indent=2))


if __name__ == "__main__":
    main()
