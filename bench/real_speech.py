"""The speech stage on real human recordings with reference text that a registry package
ships: the LibriVox clips (public domain, one reader of *Sense and Sensibility*) and the spoken
card names in the pocketsphinx 5.1.1 source distribution's test data (PyPI, BSD-2-Clause).

    python -m bench.real_speech [--json out.json]

Fetches the sdist from PyPI once (pinned by sha256) into ~/.cache/phq-bench, reads the clips
from it in memory, and reports per clip: the WER of Moonshine tiny on the clip alone
(``SpeechRecogniser.transcribe``, what the speech stage does with one turn); then the LibriVox
clips joined with 1-s pauses as one recording through ``app.speech.hearing.hear`` (speaker
separation, then recognition of the patient's turns): how many speakers it finds (truth:
one reader) and the WER of the joined text; and the card speaker's five clips alternating with
the five LibriVox clips (0.7-s pauses, two real people): speakers found, the attribution
accuracy of the separation (tests.interviews.attribution_accuracy) and whether the reader
(more speech) is the one taken for the patient. Bench data only: nothing here is part of the
service, and the download is from the package registry, never at run time.

Reference texts are lower case without punctuation; WER is computed on words as
tests.asr_clips.words normalises them. Five read sentences are not clinical speech.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import tarfile
import urllib.request
import wave
from pathlib import Path

import numpy as np

from app.runtime import RuntimeConfig
from app.speech import hearing
from app.speech.turns import speaker_turns
from tests.asr_clips import word_error_rate
from tests.interviews import attribution_accuracy

MODEL_STORE = Path(__file__).resolve().parents[1] / "model_store"
SDIST_URL = (
    "https://files.pythonhosted.org/packages/61/e7/13e0e787ff467218de880310d79cba14424f13b87171ac44af0bde1e428c/"
    "pocketsphinx-5.1.1.tar.gz"
)
SDIST_SHA256 = "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355"
CACHE = Path.home() / ".cache" / "phq-bench" / "pocketsphinx-5.1.1.tar.gz"
ROOT = "pocketsphinx-5.1.1/test/data/"


def sdist() -> bytes:
    if not CACHE.is_file():
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(SDIST_URL, timeout=120) as response:
            CACHE.write_bytes(response.read())
    data = CACHE.read_bytes()
    if hashlib.sha256(data).hexdigest() != SDIST_SHA256:
        raise SystemExit(f"{CACHE} is not the pinned pocketsphinx 5.1.1 sdist (sha256 mismatch)")
    return data


def _wav(raw: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(raw)) as clip:
        assert clip.getframerate() == 16000 and clip.getsampwidth() == 2 and clip.getnchannels() == 1
        return np.frombuffer(clip.readframes(clip.getnframes()), "<i2").astype(np.float32) / 32768


def clips(archive: bytes) -> list[tuple[str, np.ndarray, str]]:
    """(name, 16-kHz samples, reference text) of every LibriVox and cards clip."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        files = {
            m.name[len(ROOT) :]: tar.extractfile(m).read()
            for m in tar.getmembers()
            if m.name.startswith(ROOT) and m.isfile()
        }
    out = []
    for name in sorted(n for n in files if n.startswith("librivox/") and n.endswith(".wav")):
        out.append((name, _wav(files[name]), files[name[:-4] + ".txt"].decode().strip()))
    cards = dict(
        (m.group(2), m.group(1).strip())
        for m in re.finditer(r"<s>(.*?)</s>\s*\((\d+)\)", files["cards/cards.transcription"].decode())
    )
    for number, text in sorted(cards.items()):
        out.append((f"cards/{number}.wav", _wav(files[f"cards/{number}.wav"]), text))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    models = hearing.SpeechModels.load(MODEL_STORE, RuntimeConfig())
    models.warm()
    assert models.recogniser is not None
    rows = []
    for name, samples, reference in clips(sdist()):
        heard = models.recogniser.transcribe(samples).text
        rows.append(
            {
                "clip": name,
                "seconds": round(samples.size / 16000, 1),
                "words": len(reference.split()),
                "wer": round(word_error_rate(reference, heard), 3),
                "heard": heard,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    librivox = [(s, r) for n, s, r in clips(sdist()) if n.startswith("librivox/")]
    pause = np.zeros(16000, np.float32)
    joined = np.concatenate([part for s, _ in librivox for part in (s, pause)])
    stage = hearing.hear(joined, models, separation_skipped=None, recognition_skipped=None, participant_speaker=None)
    reference = " ".join(r for _, r in librivox)
    cards = [s for n, s, _ in clips(sdist()) if n.startswith("cards/")]
    gap = np.zeros(round(0.7 * 16000), np.float32)
    parts, turns, position = [], [], 0
    for card, (read, _) in zip(cards, librivox, strict=True):
        for who, part in ((1, card), (0, read)):
            turns.append((position / 16000, (position + part.size) / 16000, who))
            parts += [part, gap]
            position += part.size + gap.size
    two = np.concatenate(parts)
    found = speaker_turns(two, models.voice_encoder)
    two_stage = hearing.hear(
        two, models, separation_skipped=None, recognition_skipped="not measured here", participant_speaker=None
    )
    words = sum(r["words"] for r in rows)
    result = {
        "clips": rows,
        "pooled_wer": round(sum(r["wer"] * r["words"] for r in rows) / words, 3),
        "librivox_joined": {
            "seconds": round(joined.size / 16000, 1),
            "speakers_found": stage.speakers,
            "count_rule": stage.count_rule,
            "wer": round(word_error_rate(reference, " ".join(u.text for u in stage.utterances)), 3),
        },
        "two_real_voices": {
            "seconds": round(two.size / 16000, 1),
            "speakers_found": found.count.speakers,
            "count_rule": found.count.rule,
            "attribution_accuracy": round(attribution_accuracy(found.frame_labels, turns), 4),
            "reader_taken_for_patient": two_stage.participant == 0 and found.speech_s[0] > found.speech_s[-1],
        },
    }
    print(json.dumps({k: v for k, v in result.items() if k != "clips"}))
    if args.json:
        args.json.write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
