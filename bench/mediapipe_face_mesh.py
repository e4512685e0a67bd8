"""MediaPipe's own Python face mesh on pre-decoded RGB frames: the reference for bench.visual_extractor.

    <bench venv>/bin/python bench/mediapipe_face_mesh.py FRAMES.npy [--refine] [--cores N]

Runs in its own venv (mediapipe 0.10.21 needs numpy<2): standard library, numpy and
mediapipe only, no project imports. Loads the (N, H, W, 3) uint8 frames, builds one
FaceMesh(static_image_mode=False, max_num_faces=1), runs one untimed warm-up pass, prints
a JSON "ready" line, then answers each "run" line on stdin with one timed pass over all
frames (wall and process CPU seconds) as a JSON line. Staying alive between passes lets the caller interleave repeats
with its own variants, so background load hits every variant alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("frames", help=".npy file of (N, H, W, 3) uint8 RGB frames")
    parser.add_argument("--refine", action="store_true", help="refine_landmarks=True (attention mesh, iris)")
    parser.add_argument("--cores", type=int, help="pin the process to this many CPUs before MediaPipe starts")
    args = parser.parse_args()
    if args.cores:
        # before the graph exists: its calculator and XNNPACK threads inherit the mask
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])

    import mediapipe as mp

    frames = np.load(args.frames, mmap_mode="r")
    mesh = mp.solutions.face_mesh.FaceMesh(
        static_image_mode=False, max_num_faces=1, refine_landmarks=args.refine, min_detection_confidence=0.5
    )

    def one_pass() -> tuple[float, float, int]:
        faces = 0
        start, start_cpu = time.perf_counter(), time.process_time()
        for frame in frames:
            if mesh.process(frame).multi_face_landmarks:
                faces += 1
        return time.perf_counter() - start, time.process_time() - start_cpu, faces

    warm_s, _, warm_faces = one_pass()
    print(
        json.dumps(
            {
                "ready": True,
                "mediapipe": mp.__version__,
                "numpy": np.__version__,
                "frames": len(frames),
                "cpus": len(os.sched_getaffinity(0)),
                "warmup_s": warm_s,
                "warmup_faces": warm_faces,
            }
        ),
        flush=True,
    )
    for line in sys.stdin:
        if line.strip() != "run":
            break
        seconds, cpu_seconds, faces = one_pass()
        print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "faces": faces}), flush=True)
    mesh.close()


if __name__ == "__main__":
    main()
