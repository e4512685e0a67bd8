"""Visual extractor throughput against decode-only and MediaPipe's own Python face mesh.

    python -m bench.visual_extractor [--repeats 5] [--motions pan rotate] [--json out.json]

Per generated clip (640x480, 30 fps, 20 s, the astronaut's head moving; H.264 mp4 in a temp
dir), in one run and with repeats interleaved round-robin so background load hits every
variant alike:

- decode-only: PyAV decode of every frame, and the extractor's own ``VideoSampler`` (every
  frame decoded, the 10 Hz ticks converted to RGB);
- the project's ``VisualExtractor.extract`` on the file, and ``extract_frames`` on the
  sampled RGB frames already in memory, each with the face models in LiteRT (the served
  default on a CPU host) and in ONNX Runtime, one thread;
- MediaPipe 0.10.21's ``mp.solutions.face_mesh.FaceMesh`` (static_image_mode=False,
  max_num_faces=1, refine_landmarks True and False) on exactly those sampled frames, in a
  bench-only venv (.build/bench-mediapipe, created on first use: mediapipe needs numpy<2),
  as a subprocess (bench/mediapipe_face_mesh.py) reading them from an .npy file; once with
  the CPUs it is given and once pinned to one CPU (its XNNPACK thread count is not settable
  from the Python solution API).

Figures: seconds per clip, median [min-max] over the repeats, process CPU seconds (all
threads; steadier than wall time when other jobs share the cores), frames per second (output
ticks at 10 Hz and source frames), and ratios to decode-only and to MediaPipe.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL_STORE = REPO / "model_store"
MEDIAPIPE_VENV = REPO / ".build" / "bench-mediapipe"
MEDIAPIPE_REQUIREMENT = "mediapipe==0.10.21"
MEDIAPIPE_SCRIPT = Path(__file__).resolve().with_name("mediapipe_face_mesh.py")

DECODE_SAMPLED = "decode-only: VideoSampler 10 Hz -> RGB"
# the served default on a CPU host: the face models in LiteRT (setting face_backend auto)
EXTRACT_FILE_1T = "extractor .extract(file), LiteRT, 1 thread"
EXTRACT_FRAMES_1T = "extractor .extract_frames(RGB), LiteRT, 1 thread"
EXTRACT_FILE_ORT = "extractor .extract(file), ONNX Runtime, 1 thread"
MEDIAPIPE_REFINE = "MediaPipe FaceMesh refine=True"
# targets of the brief: at least MediaPipe's throughput, within 3x of decode-only
MAX_DECODE_RATIO = 3.0
MIN_MEDIAPIPE_RATIO = 1.0


@dataclass
class Variant:
    """One timed thing: ``run`` does a whole pass and returns (wall s, CPU s, frames with a face or None)."""

    name: str
    run: Callable[[], tuple[float, float, int | None]]
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    faces: int | None = None


def _timed(fn: Callable[[], int | None]) -> Callable[[], tuple[float, float, int | None]]:
    # CPU time (all threads of the process) stays meaningful when other jobs share the cores
    def run() -> tuple[float, float, int | None]:
        start, start_cpu = time.perf_counter(), time.process_time()
        faces = fn()
        return time.perf_counter() - start, time.process_time() - start_cpu, faces

    return run


# ------------------------------------------------------------------------------- mediapipe venv


def mediapipe_python(install: bool) -> tuple[Path | None, str]:
    """The bench venv's python with mediapipe importable, or None and why not."""
    python = MEDIAPIPE_VENV / "bin" / "python"
    if not python.exists():
        if not install:
            return None, f"{MEDIAPIPE_VENV} does not exist (run without --no-install)"
        print(f"creating {MEDIAPIPE_VENV} ...", file=sys.stderr)
        made = subprocess.run([sys._base_executable, "-m", "venv", str(MEDIAPIPE_VENV)], capture_output=True, text=True)
        if made.returncode:
            return None, f"venv failed: {made.stderr.strip()[-300:]}"
    if subprocess.run([str(python), "-c", "import mediapipe"], capture_output=True).returncode == 0:
        return python, "ok"
    if not install:
        return None, f"mediapipe is not installed in {MEDIAPIPE_VENV}"
    print(f"pip install {MEDIAPIPE_REQUIREMENT} into {MEDIAPIPE_VENV} ...", file=sys.stderr)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", MEDIAPIPE_REQUIREMENT], capture_output=True, text=True
    )
    if pip.returncode:
        lines = [ln for ln in pip.stderr.splitlines() if not ln.startswith("WARNING")]
        return None, f"pip install {MEDIAPIPE_REQUIREMENT} failed: {' '.join(lines)[-300:]}"
    return python, "ok"


class MediaPipeWorker:
    """A running bench/mediapipe_face_mesh.py: one FaceMesh, warmed up, timing a pass per request."""

    def __init__(self, python: Path, frames_npy: Path, refine: bool, cores: int | None) -> None:
        command = [str(python), str(MEDIAPIPE_SCRIPT), str(frames_npy)]
        command += ["--refine"] if refine else []
        command += ["--cores", str(cores)] if cores else []
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.ready = self._reply()

    def _reply(self) -> dict:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"mediapipe worker exited with {self.process.wait()}")
        return json.loads(line)

    def run(self) -> tuple[float, float, int | None]:
        assert self.process.stdin is not None
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        reply = self._reply()
        return float(reply["seconds"]), float(reply["cpu_seconds"]), int(reply["faces"])

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


# ------------------------------------------------------------------------------- measurement


def decode_all(path: Path) -> None:
    """Every frame decoded, nothing converted (threading as VideoSampler sets it)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass


def measure_clip(motion: str, args: argparse.Namespace, workdir: Path, python: Path | None, versions: dict) -> dict:
    from app.contract import VisualSpec
    from app.features.visual.models import FaceModels
    from app.features.visual.sampling import VideoSampler
    from app.features.visual.tracking import VisualExtractor
    from app.runtime import RuntimeConfig
    from tests.media import face_frames, write_video

    spec = VisualSpec()
    n_source = round(args.seconds * args.fps)
    video = workdir / f"{motion}.mp4"
    start = time.perf_counter()
    write_video(video, face_frames(n_source, args.size, motion=motion), args.fps)
    print(f"[{motion}] wrote {video.name} ({n_source} frames) in {time.perf_counter() - start:.0f} s", file=sys.stderr)

    sampler = VideoSampler(video, spec.rate_hz)
    sampled = list(sampler)
    if any(frame is None for frame in sampled):
        raise RuntimeError("the sampler left ticks without a picture")
    n_decoded = sampler.decoded_frames
    frames_npy = workdir / f"{motion}.npy"
    np.save(frames_npy, np.stack(sampled))

    extractors = {
        backend: VisualExtractor(FaceModels(MODEL_STORE, RuntimeConfig(tflite_backend=backend)), spec)
        for backend in ("litert", "onnxruntime")
    }

    def faces_of(result) -> int:
        return int(result.valid.sum())

    def decode_sampled() -> None:
        for _ in VideoSampler(video, spec.rate_hz):
            pass

    variants = [
        Variant("decode-only: PyAV, all frames", _timed(lambda: decode_all(video))),
        Variant(DECODE_SAMPLED, _timed(decode_sampled)),
    ]
    for backend, extractor in extractors.items():
        name = EXTRACT_FILE_1T if backend == "litert" else EXTRACT_FILE_ORT
        variants.append(Variant(name, _timed(lambda e=extractor: faces_of(e.extract(video)))))
    for backend, extractor in extractors.items():
        name = EXTRACT_FRAMES_1T if backend == "litert" else "extractor .extract_frames(RGB), ONNX Runtime, 1 thread"
        variants.append(Variant(name, _timed(lambda e=extractor: faces_of(e.extract_frames(sampled)))))

    workers: list[MediaPipeWorker] = []
    mediapipe_note = ""
    if python is not None:
        cpus = len(os.sched_getaffinity(0))
        for refine in (True, False):
            for cores in (None, 1):
                label = f"MediaPipe FaceMesh refine={refine}" + (", pinned to 1 CPU" if cores else f", {cpus} CPUs")
                try:
                    worker = MediaPipeWorker(python, frames_npy, refine, cores)
                except (RuntimeError, json.JSONDecodeError) as exc:
                    mediapipe_note = f"MediaPipe worker failed: {exc}"
                    break
                workers.append(worker)
                versions["mediapipe"] = worker.ready["mediapipe"]
                versions["numpy (mediapipe venv)"] = worker.ready["numpy"]
                variants.append(Variant(label, worker.run))

    print(f"[{motion}] warm-up ...", file=sys.stderr)
    for variant in variants:
        if not variant.name.startswith("MediaPipe"):  # the workers warmed themselves up
            variant.run()
    for repeat in range(args.repeats):
        for variant in variants:
            seconds, cpu_seconds, faces = variant.run()
            variant.seconds.append(seconds)
            variant.cpu_seconds.append(cpu_seconds)
            variant.faces = faces
        print(f"[{motion}] repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)
    for worker in workers:
        worker.close()
    return {
        "motion": motion,
        "source_frames": n_decoded,
        "output_frames": len(sampled),
        "video_bytes": video.stat().st_size,
        "mediapipe_note": mediapipe_note,
        "variants": {v.name: {"seconds": v.seconds, "cpu_seconds": v.cpu_seconds, "faces": v.faces} for v in variants},
    }


# ------------------------------------------------------------------------------- report


def _median(values: list[float]) -> float:
    return float(np.median(values))


def machine() -> dict:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "logical_cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0))}


def print_report(clips: list[dict], info: dict, mediapipe_status: str) -> list[dict]:
    """The Markdown tables; returns the target checks."""
    m = info["machine"]
    print(f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable), no GPU used; ", end="")
    print(f"load average {info['load_before'][0]:.2f} before, {info['load_after'][0]:.2f} after.")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".")
    if mediapipe_status != "ok":
        print(f"**MediaPipe not measured:** {mediapipe_status}")
    checks: list[dict] = []
    for clip in clips:
        variants = clip["variants"]
        out_n, src_n = clip["output_frames"], clip["source_frames"]
        decode = _median(variants[DECODE_SAMPLED]["seconds"])
        decode_cpu = _median(variants[DECODE_SAMPLED]["cpu_seconds"])
        mediapipe = variants.get(f"{MEDIAPIPE_REFINE}, {info['machine']['usable_cpus']} CPUs")
        mp_median = _median(mediapipe["seconds"]) if mediapipe else None
        mp_cpu = _median(mediapipe["cpu_seconds"]) if mediapipe else None
        print()
        print(
            f"### clip `{clip['motion']}`: {src_n} source frames (30 fps), {out_n} output frames (10 Hz), "
            f"{clip['video_bytes'] / 1e6:.1f} MB; median [min-max] over {len(variants[DECODE_SAMPLED]['seconds'])}"
        )
        if clip["mediapipe_note"]:
            print(f"\n{clip['mediapipe_note']}")
        print()
        print(
            "| variant | s per clip | CPU s per clip | output fps (10 Hz) | source fps | time / decode-only "
            "| fps / MediaPipe refine | faces |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for name, figures in variants.items():
            times = figures["seconds"]
            med = _median(times)
            vs_mp = f"{mp_median / med:.2f}x" if mp_median else "n/a"
            faces = "" if figures["faces"] is None else f"{figures['faces']}/{out_n}"
            print(
                f"| {name} | {med:.2f} [{min(times):.2f}-{max(times):.2f}] | {_median(figures['cpu_seconds']):.2f} "
                f"| {out_n / med:.1f} | {src_n / med:.1f} "
                f"| {med / decode:.2f}x | {vs_mp} | {faces} |"
            )
        extract = variants[EXTRACT_FILE_1T]
        ratio = _median(extract["seconds"]) / decode
        checks.append(
            {
                "clip": clip["motion"],
                "target": f"extractor (file, LiteRT, 1 thread) time <= {MAX_DECODE_RATIO:g}x decode-only",
                "ratio": ratio,
                "cpu_ratio": _median(extract["cpu_seconds"]) / decode_cpu,
                "met": ratio <= MAX_DECODE_RATIO,
            }
        )
        if mp_median and mp_cpu:
            for name in (EXTRACT_FRAMES_1T, EXTRACT_FILE_1T):
                ratio = mp_median / _median(variants[name]["seconds"])
                checks.append(
                    {
                        "clip": clip["motion"],
                        "target": f"{name} fps >= {MEDIAPIPE_REFINE} ({m['usable_cpus']} CPUs) fps",
                        "ratio": ratio,
                        "cpu_ratio": mp_cpu / _median(variants[name]["cpu_seconds"]),
                        "met": ratio >= MIN_MEDIAPIPE_RATIO,
                    }
                )
    print()
    print("### targets")
    print()
    print("| clip | target | measured (wall) | same in CPU time | verdict (wall) |")
    print("|---|---|---|---|---|")
    for check in checks:
        verdict = "met" if check["met"] else "missed"
        print(
            f"| {check['clip']} | {check['target']} | {check['ratio']:.2f}x | {check['cpu_ratio']:.2f}x | {verdict} |"
        )
    return checks


def main() -> None:
    import av
    import cv2
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--motions", nargs="+", default=["pan", "rotate"], help="tests.media face_frames motions")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split("x")), default=(640, 480))
    parser.add_argument("--no-install", action="store_true", help="do not create the MediaPipe venv when missing")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args()

    python, mediapipe_status = mediapipe_python(install=not args.no_install)
    versions = {
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "av": av.__version__,
        "ffmpeg (libavcodec)": ".".join(str(v) for v in av.library_versions["libavcodec"]),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }
    info = {"machine": machine(), "versions": versions, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        clips = [measure_clip(motion, args, Path(tmp), python, versions) for motion in args.motions]
    info["load_after"] = os.getloadavg()
    checks = print_report(clips, info, mediapipe_status)
    if args.json:
        raw = {**info, "mediapipe_status": mediapipe_status, "clips": clips, "targets": checks}
        args.json.write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
