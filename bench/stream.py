"""Live /stream sessions at real-time rate against a real server.

    python -m bench.stream [--seconds 75] [--sessions 1 2] [--json out.json]

Per level, that many concurrent sessions replay the same generated call (an MJPEG 320x240
10-fps talking face, espeak-ng speech as 100-ms PCM blocks, captions as each segment ends)
at its own pace, through ``app.client.stream.run_session``; ``--no-captions`` sends no captions,
so the running estimates' words come from live speech recognition. Measured in one run:

- estimate lag: from the moment the media an ``estimate`` (or ``window``) covers were sent
  to its arrival (stream clock against wall clock, both from the session's start);
- how far the video tracked for an estimate trails its audio, and how many estimates used
  the face (the service's 30 s of face minimum holds here too);
- the final answer's delay after ``end`` (the analysis of the whole call, video included);
- server CPU (the server and its workers, /proc) per session-second of call: how many cores
  one live session uses, and so how many two cores hold.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.service import serve, tree_cpu_seconds


def make_call(folder: Path, seconds: float) -> dict[str, Path]:
    from tests.api.conftest import ANSWERS
    from tests.media import face_frames, speech_signal, write_audio, write_media

    parts, text = [], []
    while sum(p.size for p in parts) / 16000 < seconds:
        sentence = ANSWERS[len(parts) % len(ANSWERS)]
        parts.append(speech_signal(sentence))
        text.append(sentence)
    import numpy as np

    signal = np.concatenate(parts)[: round(seconds * 16000)]
    captions, t = [], 0.0
    for part, sentence in zip(parts, text, strict=True):
        end = min(t + part.size / 16000, seconds)
        if t < seconds:
            captions.append({"speaker": "Participant", "start": round(t, 3), "end": round(end, 3), "text": sentence})
        t = end
    video = write_media(
        folder / "call.mkv",
        face_frames(round(seconds * 10), (320, 240), "pan"),
        10,
        [],
        video_codec="mjpeg",
        container_format="matroska",
    )
    (folder / "captions.json").write_text(json.dumps(captions))
    return {
        "video": video,
        "audio": write_audio(signal, 16000, folder / "call.wav"),
        "captions": folder / "captions.json",
    }


def one_session(url: str, media: dict[str, Path], out: dict[str, Any], captions: bool = True) -> None:
    from app.client.stream import config_message, replay_frames, run_session

    arrivals: list[tuple[float, dict]] = []
    started = time.monotonic()
    sent_end: list[float] = []

    def frames():
        yield from replay_frames(media["video"], media["audio"], media["captions"] if captions else None)
        sent_end.append(time.monotonic() - started)

    result = run_session(
        url,
        config_message(media["video"], True, captions),
        frames(),
        realtime=True,
        on_message=lambda m: arrivals.append((time.monotonic() - started, m)),
    )
    lags = [at - m["stream_s"] for at, m in arrivals if m["type"] == "estimate"]
    # how far the tracked video trails the audio in each estimate, and how many used the face
    video_behind = [m["stream_s"] - m["video_s"] for _, m in arrivals if m["type"] == "estimate" and m["video_s"]]
    face_used = [m for _, m in arrivals if m["type"] == "estimate" and m["modalities"].get("visual", {}).get("used")]
    words_used = [m for _, m in arrivals if m["type"] == "estimate" and m["modalities"].get("text", {}).get("used")]
    window_lags = [at - m["end_s"] for at, m in arrivals if m["type"] == "window"]
    final = [at for at, m in arrivals if m["type"] == "final"]
    out.update(
        close_code=result.close_code,
        estimates=len(lags),
        estimate_lag_s=lags,
        video_behind_s=video_behind,
        face_used=len(face_used),
        words_used=len(words_used),
        window_lag_s=window_lags,
        final_after_end_s=(final[0] - sent_end[0]) if final and sent_end else None,
    )


def run_level(
    url: str, pid: int, media: dict[str, Path], sessions: int, seconds: float, captions: bool = True
) -> dict[str, Any]:
    outs: list[dict[str, Any]] = [{} for _ in range(sessions)]
    cpu0, wall0 = tree_cpu_seconds(pid), time.monotonic()
    threads = [threading.Thread(target=one_session, args=(url, media, outs[k], captions)) for k in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu, wall = tree_cpu_seconds(pid) - cpu0, time.monotonic() - wall0
    lags = [lag for o in outs for lag in o.get("estimate_lag_s", [])]
    windows = [lag for o in outs for lag in o.get("window_lag_s", [])]
    behind = [b for o in outs for b in o.get("video_behind_s", [])]
    finals = [o["final_after_end_s"] for o in outs if o.get("final_after_end_s") is not None]
    return {
        "sessions": sessions,
        "closed": [o.get("close_code") for o in outs],
        "estimates": sum(o.get("estimates", 0) for o in outs),
        "estimate_lag_p50_s": statistics.median(lags) if lags else None,
        "estimate_lag_max_s": max(lags) if lags else None,
        "window_lag_max_s": max(windows) if windows else None,
        "video_behind_max_s": max(behind) if behind else None,
        "estimates_with_face": sum(o.get("face_used", 0) for o in outs),
        "estimates_with_words": sum(o.get("words_used", 0) for o in outs),
        "final_after_end_s": statistics.median(finals) if finals else None,
        "server_cpu_s": cpu,
        "wall_s": wall,
        "cores_per_session_during_call": cpu / wall / sessions,
        "call_s": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=75.0, help="length of the replayed call")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2], help="concurrent sessions per level")
    parser.add_argument(
        "--no-captions", action="store_true", help="send no captions: the words come from live speech recognition"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        media = make_call(Path(tmp), args.seconds)
        with serve("default", {"max_waiting_requests": "8"}) as server:
            url = server.url.replace("http://", "ws://") + "/stream"
            levels = []
            for sessions in args.sessions:
                print(f"[{sessions} sessions] {args.seconds:.0f}-s call at real time ...", file=sys.stderr)
                levels.append(run_level(url, server.pid, media, sessions, args.seconds, not args.no_captions))
    print(
        "| sessions | closed | estimates (with the face, with words) | estimate lag p50 / max | window lag max | "
        "video behind the audio, max | final after end | server CPU s | cores per session |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for level in levels:

        def s(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.2f} s"

        print(
            f"| {level['sessions']} | {level['closed']} | {level['estimates']} ({level['estimates_with_face']}, "
            f"{level['estimates_with_words']}) | "
            f"{s(level['estimate_lag_p50_s'])} / {s(level['estimate_lag_max_s'])} | {s(level['window_lag_max_s'])} | "
            f"{s(level['video_behind_max_s'])} | {s(level['final_after_end_s'])} | "
            f"{level['server_cpu_s']:.1f} | {level['cores_per_session_during_call']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(levels, indent=2))


if __name__ == "__main__":
    main()
