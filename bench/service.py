"""The whole service under load: one request's stages, concurrent clients, memory, and the fusion model.

    python -m bench.service [--quick] [--json out.json] [--markdown out.md]

One run, every figure next to a baseline measured in the same run:

- media: generated interviews of 60 s and 10 minutes (640x480, 30 fps H.264 talking face with
  espeak-ng speech of a participant's answers as AAC, plus a WebVTT transcript of those lines),
  cached under .build/bench-media keyed by their parameters;
- fusion: the served fusion network in ONNX Runtime (the service's session options, 1 and 2
  intra-op threads) against the same weights in PyTorch eager (checkpoint.pt, 1 and 2 threads,
  inference_mode), on the same random inputs of 1 and 16 windows; ratio eager / ONNX;
- one request: a real ``python -m app`` (uvicorn on loopback, default settings unless
  ``--setting`` says otherwise) gets each interview ``--repeats`` times; per stage
  (``timings_ms``) median [min-max], the client's wall time, x real time and x decode-only
  (PyAV decoding every video and audio frame of the same file, timed between the requests;
  the extractor's own 10 Hz ``VideoSampler`` too);
- concurrency: 1, 4 and 16 clients, each sending the 60 s interview a bounded number of times
  (no new request after ``--max-seconds``); 503s are counted, not retried. Latency p50/p95/p99 of
  the 200s, throughput (interviews per minute, interview seconds per wall second) and its ratio
  to the 1-client level. The largest level runs again against a server whose waiting queue
  holds every client (PHQ_MAX_WAITING_REQUESTS), so latency under full load is measured too;
- memory: the server and its worker processes, VmRSS sampled while each phase runs (peak of
  the sum) and VmHWM of each process at the end of each phase (peak since it started).

Other jobs may share the cores: the load average is recorded at the start and end of every
phase, and the server's CPU seconds per request (steadier than wall time) next to wall times.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import httpx

REPO = Path(__file__).resolve().parents[1]
MEDIA_CACHE = REPO / ".build" / "bench-media"
# bump when the generated media change for the same parameters, so stale caches are not reused
MEDIA_GENERATOR_VERSION = 1

FRAME_SIZE = (640, 480)
FRAME_RATE = 30
SAMPLE_RATE = 16000
VOICE, WORDS_PER_MINUTE = "en-us", 160
GAP_BETWEEN_ANSWERS_S = 0.6
# face_frames warps every frame (about 25 ms at 640x480): 18,000 warps for 10 minutes would take
# 7 minutes, so one pan is rendered and played back and forth (no jump cuts) for the whole video
PAN_SECONDS = 8.0

STAGES = ("upload", "probe", "transcript", "visual", "decode", "audio", "text", "windows", "inference")
FUSION_WINDOWS = (1, 16)
FUSION_THREADS = (1, 2)

# targets of the performance issue
TARGET_60S_P50_S = 3.0
TARGET_10MIN_S = 30.0
TARGET_FUSION_SPEEDUP = 2.0
TARGET_THROUGHPUT_GAIN = 1.5

FULL_REQUESTS_PER_CLIENT = {1: 5, 4: 3, 16: 2}
PERFORMANCE_SETTINGS = (
    "workers",
    "worker_threads",
    "max_waiting_requests",
    "intra_op_threads",
    "inter_op_threads",
    "graph_optimization",
    "batch_max_windows",
    "batch_max_wait_ms",
    "request_timeout_s",
    "worker_memory_bytes",
    "providers",
)
QUICK_REQUESTS_PER_CLIENT = {1: 2, 4: 1, 16: 1}


def _median(values: list[float]) -> float:
    return float(np.median(values))


def _summary(values: list[float]) -> dict[str, float | int]:
    return {"median": _median(values), "min": min(values), "max": max(values), "n": len(values)}


def _loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# ------------------------------------------------------------------------------- media


@dataclass
class Interview:
    """A generated interview on disk: the video (with its audio track) and the WebVTT transcript."""

    name: str
    duration_s: float
    video: Path
    transcript: Path
    utterances: int
    words: int
    video_bytes: int
    generated_s: float  # how long generating it took (when it was made)
    cached: bool  # taken from the cache in this run


def _clock(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _answers() -> list[str]:
    from tests.api.conftest import ANSWERS  # the answers the API tests speak

    return list(ANSWERS)


def _participant_speech(duration_s: float) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """The answers spoken one after another (looping) for exactly ``duration_s``, and their cues."""
    from tests.media import speech_signal

    total = round(duration_s * SAMPLE_RATE)
    parts: list[np.ndarray] = []
    cues: list[tuple[float, float, str]] = []
    gap = np.zeros(round(GAP_BETWEEN_ANSWERS_S * SAMPLE_RATE), np.float32)
    filled = 0
    for answer in itertools.cycle(_answers()):
        speech = speech_signal(answer, SAMPLE_RATE, voice=VOICE, wpm=WORDS_PER_MINUTE)
        if filled + speech.size > total:
            break
        cues.append((filled / SAMPLE_RATE, (filled + speech.size) / SAMPLE_RATE, answer))
        parts += [speech, gap]
        filled += speech.size + gap.size
    signal = np.concatenate(parts)[:total]
    return np.pad(signal, (0, total - signal.size)), cues


def _pan_frames(n_frames: int) -> Iterator[np.ndarray]:
    """``n_frames`` of the astronaut panning left to right and back, rendered once per direction."""
    from tests.media import face_frames

    one_way = list(face_frames(round(PAN_SECONDS * FRAME_RATE), FRAME_SIZE, motion="pan"))
    back_and_forth = one_way + one_way[-2:0:-1]
    for index in range(n_frames):
        yield back_and_forth[index % len(back_and_forth)]


def interview(duration_s: float, root: Path) -> Interview:
    """The interview of ``duration_s`` from the cache folder ``root``, or generated into it."""
    from tests.media import write_video

    params = {
        "generator": MEDIA_GENERATOR_VERSION,
        "duration_s": duration_s,
        "size": FRAME_SIZE,
        "fps": FRAME_RATE,
        "sample_rate": SAMPLE_RATE,
        "voice": VOICE,
        "wpm": WORDS_PER_MINUTE,
        "gap_s": GAP_BETWEEN_ANSWERS_S,
        "pan_s": PAN_SECONDS,
        "answers": _answers(),
    }
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    name = f"{duration_s / 60:g} min" if duration_s >= 120 else f"{duration_s:g} s"
    folder = root / f"interview-{duration_s:g}s-{key}"
    meta_path = folder / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        meta.pop("params")
        return Interview(
            name=name, video=folder / "interview.mp4", transcript=folder / "interview.vtt", cached=True, **meta
        )

    print(f"generating the {name} interview into {folder} ...", file=sys.stderr)
    started = time.perf_counter()
    # built beside its final place and renamed, so an interrupted run leaves no half-written cache
    building = root / f".{folder.name}.{os.getpid()}"
    building.mkdir(parents=True, exist_ok=True)
    signal, cues = _participant_speech(duration_s)
    write_video(
        building / "interview.mp4",
        _pan_frames(round(duration_s * FRAME_RATE)),
        FRAME_RATE,
        audio=signal,
        sample_rate=SAMPLE_RATE,
    )
    vtt = "WEBVTT\n\n" + "\n".join(f"{_clock(a)} --> {_clock(b)}\n<v Participant>{text}\n" for a, b, text in cues)
    (building / "interview.vtt").write_text(vtt)
    meta = {
        "duration_s": duration_s,
        "utterances": len(cues),
        "words": sum(len(text.split()) for _, _, text in cues),
        "video_bytes": (building / "interview.mp4").stat().st_size,
        "generated_s": round(time.perf_counter() - started, 1),
        "params": params,
    }
    (building / "meta.json").write_text(json.dumps(meta, indent=2))
    building.rename(folder)
    print(f"  {name}: {meta['video_bytes'] / 1e6:.0f} MB in {meta['generated_s']:.0f} s", file=sys.stderr)
    meta.pop("params")
    return Interview(
        name=name, video=folder / "interview.mp4", transcript=folder / "interview.vtt", cached=False, **meta
    )


# ------------------------------------------------------------------------------- decode-only baselines


def decode_every_frame(path: Path) -> int:
    """PyAV decoding every video and audio frame of the file, converting nothing: the floor."""
    import av

    with av.open(str(path)) as container:
        container.streams.video[0].thread_type = "AUTO"  # as the extractor's sampler decodes
        return sum(1 for _ in container.decode(video=0, audio=0))


def decode_sampled(path: Path) -> int:
    """The visual extractor's own sampler: every frame decoded, the 10 Hz ticks converted to RGB."""
    from app.contract import VisualSpec
    from app.features.visual.sampling import VideoSampler

    return sum(1 for _ in VideoSampler(path, VisualSpec().rate_hz))


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall s, CPU s of this process)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - start_cpu


# ------------------------------------------------------------------------------- server processes


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat fields after the command name (state first), None once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name in parentheses may hold spaces and ')': split after the last one
    return stat[stat.rindex(")") + 2 :].split()


def process_tree(root: int) -> dict[int, str]:
    """``root`` and its descendants: pid -> role (server, worker, other)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _proc_stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
    tree = {root: "server"}
    added = True
    while added:
        added = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                tree[pid] = "worker" if b"spawn_main" in cmdline else "other"
                added = True
    return tree


def _status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of the server and its live children (workers are long-lived)."""
    total = 0
    for pid in process_tree(root):
        if (fields := _proc_stat(pid)) is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLOCK_TICKS


def high_water_marks(root: int) -> list[dict]:
    """VmHWM (peak resident set since the process started) of the server and each child."""
    rows = []
    for pid, role in sorted(process_tree(root).items()):
        hwm = _status_kib(pid, "VmHWM")
        if hwm is not None:
            rows.append({"pid": pid, "role": role, "vm_hwm_mib": round(hwm / 1024, 1)})
    return rows


class MemorySampler:
    """Polls VmRSS of the server's process tree while a phase runs; keeps the peak of the sum."""

    def __init__(self, root: int, interval_s: float = 0.25) -> None:
        self.root, self.interval_s = root, interval_s
        self.peak_sum_kib = 0
        self.peak_kib: dict[int, int] = {}
        self.roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last_scan = -math.inf
        while not self._stop.is_set():
            if time.monotonic() - last_scan > 1.0:  # a /proc scan costs more than reading a few files
                self.roles.update(process_tree(self.root))
                last_scan = time.monotonic()
            total = 0
            for pid in list(self.roles):
                rss = _status_kib(pid, "VmRSS")
                if rss is not None:
                    total += rss
                    self.peak_kib[pid] = max(self.peak_kib.get(pid, 0), rss)
            self.peak_sum_kib = max(self.peak_sum_kib, total)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> dict:
        return {
            "sampled_peak_rss_sum_mib": round(self.peak_sum_kib / 1024, 1),
            "sampled_peak_rss_mib": [
                {"pid": pid, "role": self.roles[pid], "peak_rss_mib": round(kib / 1024, 1)}
                for pid, kib in sorted(self.peak_kib.items())
            ],
            "vm_hwm": high_water_marks(self.root),
        }


@dataclass
class Server:
    url: str
    pid: int
    label: str
    settings: dict  # the resolved PHQ_* settings that matter for performance
    models: dict  # GET /models: providers requested and really used


@contextlib.contextmanager
def serve(label: str, overrides: dict[str, str]) -> Iterator[Server]:
    """``python -m app`` on loopback through the API tests' own ``start_server``, until /readyz."""
    import httpx

    from app.config import Settings
    from tests.api.conftest import start_server

    print(f"starting the server ({label}) ...", file=sys.stderr)
    # the same defaults the server resolves: the tests' PHQ_WORKERS=2 (also the default), then the overrides
    settings = Settings(**{"workers": 2, **overrides})  # type: ignore[arg-type]
    # settings that bear on performance; getattr: some (batching) are newer than others
    resolved = {name: getattr(settings, name) for name in PERFORMANCE_SETTINGS if hasattr(settings, name)}
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp, start_server(Path(tmp), **overrides) as running:
        models = httpx.get(running.url + "/models", timeout=30).json()
        yield Server(url=running.url, pid=running.pid, label=label, settings=resolved, models=models)


# ------------------------------------------------------------------------------- requests


@dataclass
class Outcome:
    status: int
    seconds: float  # client wall time, request sent to answer read
    started_s: float = 0.0  # offset from the start of its level
    timings_ms: dict[str, float] | None = None
    problem: str | None = None  # the problem type of an error answer
    server_cpu_s: float | None = None
    used: list[str] | None = None  # modalities the answer used
    face_found_ratio: float | None = None


@dataclass
class Upload:
    """An interview's files held in memory, so reading them is not part of the timed request."""

    interview: Interview
    video: bytes = field(repr=False)
    transcript: bytes = field(repr=False)

    @classmethod
    def of(cls, interview: Interview) -> Upload:
        return cls(interview, interview.video.read_bytes(), interview.transcript.read_bytes())


def post_interview(client: httpx.Client, upload: Upload) -> Outcome:
    """One /predict; a connection failure is an outcome (status 0) too, not a lost client thread."""
    import httpx

    files = {
        "video": ("interview.mp4", upload.video, "video/mp4"),
        "transcript": ("interview.vtt", upload.transcript, "text/vtt"),
    }
    start = time.perf_counter()
    try:
        response = client.post("/predict", files=files)
    except httpx.HTTPError as exc:
        return Outcome(0, time.perf_counter() - start, problem=type(exc).__name__)
    seconds = time.perf_counter() - start
    if response.status_code == 200:
        # a degraded answer (no face found, audio unused) would time less work: keep what it used
        answer = response.json()
        inputs = answer.get("inputs", {})
        return Outcome(
            response.status_code,
            seconds,
            timings_ms=answer["timings_ms"],
            used=[name for name, report in inputs.items() if report.get("used")],
            face_found_ratio=inputs.get("visual", {}).get("quality", {}).get("face_found_ratio"),
        )
    try:
        problem = response.json().get("type", "").rsplit("/", 1)[-1]
    except ValueError:
        problem = response.text[:80]
    return Outcome(response.status_code, seconds, problem=problem)


def _client(server: Server) -> httpx.Client:
    import httpx

    # the request may wait for a worker behind a full queue, then take up to the preprocessing limit
    timeout = httpx.Timeout(30.0, read=float(server.settings["request_timeout_s"]) * 2 + 120)
    return httpx.Client(base_url=server.url, timeout=timeout)


def measure_one_request(server: Server, upload: Upload, repeats: int) -> dict:
    """``repeats`` lone requests of one interview, each after its decode-only baselines."""
    item = upload.interview
    rows: dict[str, list] = {"decode_every_frame": [], "video_sampler": [], "requests": []}
    load_start, phase_start = _loadavg(), time.perf_counter()
    with _client(server) as client, MemorySampler(server.pid) as memory:
        for repeat in range(repeats):
            # baselines first, in the same repeat: background load hits them and the request alike
            rows["decode_every_frame"].append(_timed(lambda: decode_every_frame(item.video)))
            rows["video_sampler"].append(_timed(lambda: decode_sampled(item.video)))
            cpu_before = tree_cpu_seconds(server.pid)
            outcome = post_interview(client, upload)
            outcome.server_cpu_s = tree_cpu_seconds(server.pid) - cpu_before
            rows["requests"].append(outcome)
            print(
                f"[{item.name}] repeat {repeat + 1}/{repeats}: {outcome.status} in {outcome.seconds:.1f} s "
                f"(decode-only {rows['decode_every_frame'][-1][0]:.1f} s)",
                file=sys.stderr,
            )
    return {
        "interview": item.name,
        "duration_s": item.duration_s,
        "wall_s": time.perf_counter() - phase_start,
        "load_start": load_start,
        "load_end": _loadavg(),
        "decode_every_frame": [{"seconds": w, "cpu_seconds": c} for w, c in rows["decode_every_frame"]],
        "video_sampler": [{"seconds": w, "cpu_seconds": c} for w, c in rows["video_sampler"]],
        "requests": [asdict(o) for o in rows["requests"]],
        "memory": memory.report(),
    }


def run_level(server: Server, upload: Upload, clients: int, per_client: int, max_seconds: float) -> dict:
    """``clients`` threads, each with its own connection, sending the interview ``per_client`` times."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    level_start = [0.0]  # set just before the barrier opens

    def client_loop() -> None:
        with _client(server) as client:
            barrier.wait()
            for _ in range(per_client):
                if time.perf_counter() - level_start[0] > max_seconds:
                    break  # bounded: no new request after the time cap
                started = time.perf_counter() - level_start[0]
                outcome = post_interview(client, upload)
                outcome.started_s = started
                with lock:
                    outcomes.append(outcome)

    label = f"{clients} client{'s' if clients > 1 else ''}, queue {server.settings['max_waiting_requests']}"
    print(f"[{label}] {clients} x {per_client} requests ...", file=sys.stderr)
    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    load_start = _loadavg()
    with MemorySampler(server.pid) as memory:
        cpu_before = tree_cpu_seconds(server.pid)
        level_start[0] = time.perf_counter()
        barrier.wait()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - level_start[0]
        server_cpu = tree_cpu_seconds(server.pid) - cpu_before
    statuses = Counter(o.status for o in outcomes)
    ok = [o for o in outcomes if o.status == 200]
    latencies = [o.seconds for o in ok]
    duration = upload.interview.duration_s
    result = {
        "label": label,
        "clients": clients,
        "requests_per_client": per_client,
        "max_seconds": max_seconds,
        "server": server.label,
        "max_waiting_requests": server.settings["max_waiting_requests"],
        "sent": len(outcomes),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "ok": len(ok),
        "wall_s": wall,
        "server_cpu_s": server_cpu,
        "load_start": load_start,
        "load_end": _loadavg(),
        "interviews_per_minute": 60 * len(ok) / wall,
        "interview_seconds_per_wall_second": len(ok) * duration / wall,
        "latency_s": {
            **_summary(latencies),
            **{f"p{q}": float(np.percentile(latencies, q)) for q in (50, 95, 99)},
        }
        if latencies
        else None,
        "server_total_s": _summary([o.timings_ms["total"] / 1000 for o in ok if o.timings_ms]) if ok else None,
        "server_visual_s": _summary([o.timings_ms.get("visual", 0) / 1000 for o in ok if o.timings_ms]) if ok else None,
        "requests": [asdict(o) for o in outcomes],
        "memory": memory.report(),
    }
    print(f"[{label}] statuses {dict(statuses)} in {wall:.0f} s", file=sys.stderr)
    return result


def warm_up(server: Server, upload: Upload) -> list[dict]:
    """One request per worker at once, not counted: the first one on a fresh worker pays one-off costs."""
    from concurrent.futures import ThreadPoolExecutor

    def one() -> Outcome:
        with _client(server) as client:
            return post_interview(client, upload)

    workers = int(server.settings["workers"])
    with ThreadPoolExecutor(workers) as pool:
        outcomes = list(pool.map(lambda _: one(), range(workers)))
    print(f"[warm-up] {[(o.status, round(o.seconds, 1)) for o in outcomes]}", file=sys.stderr)
    return [asdict(o) for o in outcomes]


# ------------------------------------------------------------------------------- fusion: eager vs ONNX


def measure_fusion(rounds: int, calls_per_round: int) -> dict:
    """The served fusion network in ONNX Runtime against the same weights in PyTorch eager."""
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not installed (bench-only: pip install torch into the venv)"}
    import onnxruntime as ort

    from app.config import Settings
    from app.contract import MODALITIES, FusionManifest
    from app.model_store import versions
    from app.runtime import RuntimeConfig
    from training.export import random_inputs
    from training.network import INPUT_NAMES, FusionNet

    settings = Settings()
    version = settings.fusion_version or max(versions(settings.model_store, "fusion"))
    folder = settings.model_store / "fusion" / str(version)
    manifest = FusionManifest.load(folder / "manifest.json")
    net = FusionNet(manifest.features, manifest.network, manifest.semantics)
    net.load_state_dict(torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True))
    net.eval()
    lengths = {m: manifest.features.frames_per_window(m) for m in MODALITIES}
    rng = np.random.default_rng(0)
    inputs = {windows: random_inputs(manifest.features, windows, lengths, rng) for windows in FUSION_WINDOWS}
    tensors = {w: tuple(torch.from_numpy(x[name]) for name in INPUT_NAMES) for w, x in inputs.items()}

    def eager(windows: int) -> list[np.ndarray]:
        with torch.inference_mode():
            return [t.numpy() for t in net(*tensors[windows])]

    results: dict[str, dict] = {}
    worst_difference = 0.0
    print("[fusion] ONNX Runtime vs PyTorch eager ...", file=sys.stderr)
    for threads in FUSION_THREADS:
        torch.set_num_threads(threads)
        # the service's own session options (graph optimisation, inter-op threads), CPU provider
        options = RuntimeConfig.for_fusion(Settings(intra_op_threads=threads)).session_options()
        session = ort.InferenceSession(str(folder / manifest.model_file), options, providers=["CPUExecutionProvider"])
        variants: dict[str, Callable[[], object]] = {}
        for windows in FUSION_WINDOWS:
            ours = session.run(None, inputs[windows])
            theirs = eager(windows)
            for a, b in zip(ours, theirs, strict=True):
                worst_difference = max(worst_difference, float(np.max(np.abs(a - b))))
            variants[f"onnx {threads}t {windows}w"] = lambda w=windows, s=session: s.run(None, inputs[w])
            variants[f"eager {threads}t {windows}w"] = lambda w=windows: eager(w)
        for run in variants.values():  # warm-up
            for _ in range(3):
                run()
        times: dict[str, list[float]] = {name: [] for name in variants}
        # CPU time of the process (all threads): steadier than wall time when other jobs share the cores
        cpu_times: dict[str, list[float]] = {name: [] for name in variants}
        # blocks of calls taking turns: background load hits every variant alike, and each block
        # starts after the other runtime's threads have gone idle
        for _ in range(rounds):
            for name, run in variants.items():
                for _ in range(calls_per_round):
                    start, start_cpu = time.perf_counter(), time.process_time()
                    run()
                    times[name].append(1000 * (time.perf_counter() - start))
                    cpu_times[name].append(1000 * (time.process_time() - start_cpu))
        results.update(
            {
                name: _summary(ms) | {"ms": ms, "cpu_ms": cpu_times[name], "cpu_median": _median(cpu_times[name])}
                for name, ms in times.items()
            }
        )
    return {
        "version": version,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "max_abs_difference": worst_difference,
        "ms_per_run": results,
    }


# ------------------------------------------------------------------------------- report


def _duration(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _ms(milliseconds: float) -> str:
    return f"{milliseconds:.2f} ms"


def _span(values: dict, unit: Callable[[float], str] = _duration) -> tuple[str, str]:
    """(median, "min-max") with the unit written once when both ends share it."""
    low, high = unit(values["min"]).split(" "), unit(values["max"]).split(" ")
    span = f"{low[0]}-{high[0]} {high[1]}" if low[1] == high[1] else f"{' '.join(low)}-{' '.join(high)}"
    return unit(values["median"]), span


@dataclass
class Row:
    what: str
    median: str
    span: str
    ratio: str
    against: str


def _wall_and_cpu(value: dict, base: dict) -> str:
    return f"{value['median'] / base['median']:.2f}x (CPU time {value['cpu_median'] / base['cpu_median']:.2f}x)"


def fusion_rows(fusion: dict) -> list[Row]:
    if "skipped" in fusion:
        return [Row("fusion: eager vs ONNX", "n/a", "", "", fusion["skipped"])]
    rows = []
    runs = fusion["ms_per_run"]
    for windows in FUSION_WINDOWS:
        base = runs[f"onnx 1t {windows}w"]
        for threads in FUSION_THREADS:
            onnx = runs[f"onnx {threads}t {windows}w"]
            eager = runs[f"eager {threads}t {windows}w"]
            label = (
                f"fusion, {windows} window{'s' if windows > 1 else ''}, {threads} thread{'s' if threads > 1 else ''}"
            )
            if threads == 1:
                rows.append(Row(f"{label}: ONNX Runtime", *_span(onnx, _ms), "1.00x", "baseline"))
            else:
                ratio = _wall_and_cpu(onnx, base)
                rows.append(Row(f"{label}: ONNX Runtime", *_span(onnx, _ms), ratio, "ONNX, 1 thread"))
            rows.append(
                Row(
                    f"{label}: PyTorch eager",
                    *_span(eager, _ms),
                    _wall_and_cpu(eager, onnx),
                    f"ONNX, {threads} thread{'s' if threads > 1 else ''}",
                )
            )
    return rows


def stage_rows(single: dict) -> list[Row]:
    name = single["interview"]
    ok = [r for r in single["requests"] if r["status"] == 200]
    decode = _summary([r["seconds"] for r in single["decode_every_frame"]])
    sampler = _summary([r["seconds"] for r in single["video_sampler"]])
    rows = [
        Row(f"{name}: decode-only, PyAV every video+audio frame", *_span(decode), "1.00x", "baseline"),
        Row(f"{name}: decode-only, VideoSampler 10 Hz -> RGB", *_span(sampler), _x(sampler, decode), "decode-only"),
    ]
    if not ok:
        statuses = ", ".join(f"{r['status']} {r['problem']}" for r in single["requests"])
        return [*rows, Row(f"{name}: request", "failed", "", "", statuses)]
    total = _summary([r["timings_ms"]["total"] / 1000 for r in ok])
    for stage in STAGES:
        values = [r["timings_ms"].get(stage, 0.0) / 1000 for r in ok]
        stats = _summary(values)
        share = f"{100 * stats['median'] / total['median']:.1f} %"
        rows.append(Row(f"{name}: stage {stage}", *_span(stats), share, "share of server total"))
    wall = _summary([r["seconds"] for r in ok])
    cpu = _summary([r["server_cpu_s"] for r in ok])
    rows += [
        Row(f"{name}: server total", *_span(total), _x(total, decode), "decode-only"),
        Row(f"{name}: client wall", *_span(wall), f"{wall['median'] / single['duration_s']:.3f}x", "real time"),
        Row(f"{name}: server CPU s per request", *_span(cpu), f"{cpu['median'] / wall['median']:.2f}", "cores busy"),
    ]
    return rows


def _range(values: list[float], form: str) -> str:
    low, high = form.format(min(values)), form.format(max(values))
    return low if low == high else f"{low}-{high}"


def _x(value: dict, base: dict) -> str:
    return f"{value['median'] / base['median']:.2f}x"


def compare_levels(levels: list[dict]) -> None:
    """Each level's throughput and p50 against the 1-client level of the same server (run just
    before it, so under the most similar background load), else the first 1-client level."""
    ones = [lv for lv in levels if lv["clients"] == 1 and lv["ok"]]
    for level in levels:
        base = next((lv for lv in ones if lv["server"] == level["server"]), ones[0] if ones else None)
        level["baseline"] = base["label"] if base else None
        level["throughput_vs_1_client"] = (
            level["interviews_per_minute"] / base["interviews_per_minute"] if base else None
        )
        both = base and level["latency_s"]
        level["p50_vs_1_client"] = level["latency_s"]["p50"] / base["latency_s"]["p50"] if both else None


def level_rows(levels: list[dict]) -> list[Row]:
    rows = []
    for level in levels:
        latency, base = level["latency_s"], level["baseline"] or ""
        label = f"60 s x {level['label']}"
        if latency is None:
            rows.append(Row(f"{label}: latency", "no 200", "", "", json.dumps(level["statuses"])))
            continue
        p50_ratio = f"{level['p50_vs_1_client']:.2f}x" if level["p50_vs_1_client"] else ""
        refused = ", ".join(f"{n} x {status}" for status, n in level["statuses"].items() if status != "200")
        what = f"{label}: latency p50 of {level['ok']} 200s" + (f" ({refused} not counted)" if refused else "")
        rows.append(Row(what, *_span(latency), p50_ratio, base))
        gain = f"{level['throughput_vs_1_client']:.2f}x" if level["throughput_vs_1_client"] else ""
        rows.append(
            Row(f"{label}: throughput, interviews/min", f"{level['interviews_per_minute']:.2f}", "", gain, base)
        )
    return rows


def targets(report: dict) -> list[dict]:
    checks = []
    levels = report["levels"]
    one = next((lv for lv in levels if lv["clients"] == 1 and lv["latency_s"]), None)
    if one:
        p50 = one["latency_s"]["p50"]
        checks.append(
            {
                "target": f"60 s interview p50 <= {TARGET_60S_P50_S:g} s (1 client)",
                "measured": f"{p50:.2f} s",
                "met": p50 <= TARGET_60S_P50_S,
            }
        )
    for single in report["one_request"]:
        ok = [r["seconds"] for r in single["requests"] if r["status"] == 200]
        if single["duration_s"] >= 600 and ok:
            checks.append(
                {
                    "target": f"{single['interview']} interview <= {TARGET_10MIN_S:g} s (client wall, median)",
                    "measured": f"{_median(ok):.1f} s",
                    "met": _median(ok) <= TARGET_10MIN_S,
                }
            )
    runs = report.get("fusion", {}).get("ms_per_run")
    if runs:
        for windows in FUSION_WINDOWS:
            eager, onnx = runs[f"eager 1t {windows}w"], runs[f"onnx 1t {windows}w"]
            speedup = eager["median"] / onnx["median"]
            checks.append(
                {
                    "target": f"fusion ONNX >= {TARGET_FUSION_SPEEDUP:g}x faster than eager ({windows}w, 1 thread)",
                    "measured": f"{speedup:.2f}x (CPU time {eager['cpu_median'] / onnx['cpu_median']:.2f}x)",
                    "met": speedup >= TARGET_FUSION_SPEEDUP,
                }
            )
    top = max((lv["clients"] for lv in levels), default=0)
    if top > 1:
        for level in (lv for lv in levels if lv["clients"] == top and lv["throughput_vs_1_client"] is not None):
            gain = level["throughput_vs_1_client"]
            checks.append(
                {
                    "target": f"{level['label']}: throughput >= {TARGET_THROUGHPUT_GAIN:g}x {level['baseline']}",
                    "measured": f"{gain:.2f}x ({level['ok']} of {level['sent']} answered 200)",
                    "met": gain >= TARGET_THROUGHPUT_GAIN,
                }
            )
    return checks


def markdown(report: dict) -> str:
    m, lines = report["machine"], []
    lines.append(
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable), {m['platform']}; "
        f"load average (1/5/15 min) {report['load_start']} at the start, {report['load_end']} at the end."
    )
    if "error" in report:
        lines.append(f"**Stopped early** ({report['error'].splitlines()[0]}); see the JSON for the rest.")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + ".")
    source = report["source"]
    if source["commit"]:
        lines.append(f"Source: commit {source['commit'][:12]}, {source['modified_files']} tracked files modified.")
    for server in report["servers"]:
        s = server["settings"]
        lines.append(
            f"Server `{server['label']}`: {s['workers']} workers x {s['worker_threads']} thread, "
            f"max_waiting_requests {s['max_waiting_requests']}, fusion intra-op threads {s['intra_op_threads']}, "
            + (f"batch_max_windows {s['batch_max_windows']}, " if "batch_max_windows" in s else "")
            + f"provider {server['provider']}."
        )
    media = "; ".join(
        f"{i['name']}: {i['video_bytes'] / 1e6:.0f} MB, {i['utterances']} utterances, {i['words']} words"
        + (" (cached)" if i["cached"] else f" (generated in {i['generated_s']:.0f} s)")
        for i in report["interviews"]
    )
    lines.append(f"Interviews (640x480, 30 fps H.264 + AAC, WebVTT): {media}.")
    for single in report["one_request"]:
        answers = [r for r in single["requests"] if r["status"] == 200]
        used = sorted({"+".join(r["used"]) for r in answers})
        faces = [r["face_found_ratio"] for r in answers if r["face_found_ratio"] is not None]
        lines.append(
            f"Answers for {single['interview']}: modalities used {', '.join(used) or 'none'}"
            + (f", face found in {_range(faces, '{:.0%}')} of the frames." if faces else ".")
        )
    args = report["args"]
    per_client = ", ".join(f"{n} per client at {c}" for c, n in args["per_client"].items())
    lines.append(
        f"Lone requests: {args['repeats']} per interview, each after its decode-only baselines. Concurrency: the "
        f"60 s interview, {per_client}; no new request after {args['max_seconds']:g} s; 503s are counted, not retried."
    )
    lines.append(
        f"Bench wall time {report['wall_s'] / 60:.1f} min (media {report['media_s']:.0f} s, fusion "
        f"{report.get('fusion', {}).get('wall_s', 0):.0f} s). Figures: median and min-max."
    )
    lines += ["", "| what | median | min-max | ratio | against |", "|---|---|---|---|---|"]
    rows = fusion_rows(report["fusion"]) if "fusion" in report else []
    for single in report["one_request"]:
        rows += stage_rows(single)
    rows += level_rows(report["levels"])
    lines += [f"| {r.what} | {r.median} | {r.span} | {r.ratio} | {r.against} |" for r in rows]

    lines += [
        "",
        "| clients | queue | sent | statuses | wall s | p50 s | p95 s | p99 s | interviews/min | interview-s per s "
        "| throughput x 1 client | server CPU s per 200 | peak RSS sum (sampled) | load at end |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in report["levels"]:
        lat = level["latency_s"] or {}
        gain = level["throughput_vs_1_client"] or float("nan")
        statuses = ", ".join(f"{v}x {k}" for k, v in level["statuses"].items())
        lines.append(
            f"| {level['clients']} | {level['max_waiting_requests']} | {level['sent']} | {statuses} "
            f"| {level['wall_s']:.0f} | {lat.get('p50', float('nan')):.2f} | {lat.get('p95', float('nan')):.2f} "
            f"| {lat.get('p99', float('nan')):.2f} | {level['interviews_per_minute']:.2f} "
            f"| {level['interview_seconds_per_wall_second']:.2f} | {gain:.2f}x ({level['baseline']}) "
            f"| {level['server_cpu_s'] / max(level['ok'], 1):.1f} "
            f"| {level['memory']['sampled_peak_rss_sum_mib']:.0f} MiB | {level['load_end'][0]:.2f} |"
        )

    lines += [
        "",
        "| phase (in run order) | wall s | load (1 min) start, end | peak RSS sum, sampled "
        "| VmHWM per process at its end (peak since start) | VmHWM sum |",
        "|---|---|---|---|---|---|",
    ]
    for phase in report["phases"]:
        memory = phase["memory"]
        hwm = memory["vm_hwm"]
        each = ", ".join(f"{h['role']} {h['vm_hwm_mib']:.0f}" for h in hwm)
        lines.append(
            f"| {phase['name']} | {phase['wall_s']:.0f} | {phase['load_start'][0]:.2f}, {phase['load_end'][0]:.2f} "
            f"| {memory['sampled_peak_rss_sum_mib']:.0f} MiB | {each} MiB "
            f"| {sum(h['vm_hwm_mib'] for h in hwm):.0f} MiB |"
        )

    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {c['target']} | {c['measured']} | {'met' if c['met'] else 'missed'} |" for c in report["targets"]]
    return "\n".join(lines) + "\n"


def machine() -> dict:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def source_state() -> dict:
    """The commit measured and whether the working tree differed from it (read-only git calls)."""
    import subprocess

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    changed = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "HEAD"),
        "modified_files": None if changed is None else len(changed.splitlines()),
    }


def versions() -> dict:
    import av
    import httpx
    import onnxruntime as ort
    import uvicorn

    found = {
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "av": av.__version__,
        "ffmpeg (libavcodec)": ".".join(str(v) for v in av.library_versions["libavcodec"]),
        "numpy": np.__version__,
        "uvicorn": uvicorn.__version__,
        "httpx": httpx.__version__,
    }
    with contextlib.suppress(ImportError):
        import torch

        found["torch (bench only)"] = torch.__version__
    return found


# ------------------------------------------------------------------------------- main


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (a PHQ_ setting without the prefix), got {text!r}")
    return name.strip().lower().removeprefix("phq_"), value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 1-2 requests per client, fewer fusion runs")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--markdown", type=Path, help="write the Markdown tables here")
    parser.add_argument("--durations", type=float, nargs="+", default=[60.0, 600.0], help="interview lengths, s")
    parser.add_argument("--repeats", type=int, help="lone requests per interview (default 3; --quick 1)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrency levels")
    parser.add_argument("--requests-per-client", type=int, help="default 5/3/2 for 1/4/16 clients (--quick 2/1/1)")
    parser.add_argument("--max-seconds", type=float, help="no new request after this long in a level (300; quick 120)")
    parser.add_argument(
        "--full-queue",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the largest level again with PHQ_MAX_WAITING_REQUESTS = that many clients",
    )
    parser.add_argument(
        "--setting", type=_setting, action="append", default=[], help="a PHQ_ setting for the servers, NAME=VALUE"
    )
    parser.add_argument("--no-cache", action="store_true", help="generate the media into a temp dir, not the cache")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.max_seconds = args.max_seconds or (120.0 if args.quick else 300.0)
    defaults = QUICK_REQUESTS_PER_CLIENT if args.quick else FULL_REQUESTS_PER_CLIENT
    args.per_client = {c: args.requests_per_client or defaults.get(c, 2 if not args.quick else 1) for c in args.clients}
    args.fusion_rounds, args.fusion_calls = (2, 5) if args.quick else (5, 5)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    report: dict = {
        "command": "python -m bench.service " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "versions": versions(),
        "source": source_state(),
        "load_start": _loadavg(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "note": "other jobs may share the cores: read wall times with the load averages",
    }
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory())) if args.no_cache else MEDIA_CACHE
        generating = time.perf_counter()
        interviews = [interview(duration, root) for duration in args.durations]
        report["media_s"] = time.perf_counter() - generating
        try:
            run_phases(args, report, interviews)
        except (RuntimeError, OSError) as exc:
            # e.g. the server failed to start: keep what was measured, and say why the rest is missing
            report["error"] = f"{type(exc).__name__}: {exc}"[-3000:]
            print(f"stopped early: {report['error']}", file=sys.stderr)
    report["load_end"] = _loadavg()
    report["wall_s"] = time.perf_counter() - started
    compare_levels(report["levels"])
    report["targets"] = targets(report)
    table = markdown(report)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


def run_phases(args: argparse.Namespace, report: dict, interviews: list[Interview]) -> None:
    """Fusion, then the default server's phases, then the full-queue server's level."""
    report["interviews"] = [
        {k: str(v) if isinstance(v, Path) else v for k, v in asdict(item).items()} for item in interviews
    ]
    shortest = min(interviews, key=lambda i: i.duration_s)
    report["servers"], report["one_request"], report["levels"], report["phases"] = [], [], [], []

    # fusion first, before any server runs: nothing else of ours competes for the cores
    fusion_start = time.perf_counter()
    report["fusion"] = measure_fusion(args.fusion_rounds, args.fusion_calls)
    report["fusion"]["wall_s"] = time.perf_counter() - fusion_start
    overrides = dict(args.setting)
    uploads = {item.name: Upload.of(item) for item in interviews}

    def record(server: Server, name: str, result: dict) -> None:
        report["phases"].append(
            {
                "name": name,
                "server": server.label,
                "wall_s": result["wall_s"],
                "load_start": result["load_start"],
                "load_end": result["load_end"],
                "memory": result["memory"],
            }
        )

    with serve("default" if not overrides else "custom", overrides) as server:
        report["servers"].append(_server_entry(server))
        report["servers"][-1]["warm_up"] = warm_up(server, uploads[shortest.name])
        # lone requests of the shortest interview, the concurrency levels, then the longer
        # interviews last: VmHWM only grows, so each phase's high-water mark stays its own
        longer = sorted((i for i in interviews if i is not shortest), key=lambda i: i.duration_s)
        report["one_request"].append(measure_one_request(server, uploads[shortest.name], args.repeats))
        record(server, f"{shortest.name}, lone requests", report["one_request"][-1])
        for clients in args.clients:
            level = run_level(server, uploads[shortest.name], clients, args.per_client[clients], args.max_seconds)
            report["levels"].append(level)
            record(server, f"{shortest.name} x {level['label']}", level)
        for item in longer:
            report["one_request"].append(measure_one_request(server, uploads[item.name], args.repeats))
            record(server, f"{item.name}, lone requests", report["one_request"][-1])

    top = max(args.clients)
    queue = report["servers"][0]["settings"]["max_waiting_requests"]
    if args.full_queue and top > queue:
        with serve(f"queue {top}", {**overrides, "max_waiting_requests": str(top)}) as server:
            report["servers"].append(_server_entry(server))
            report["servers"][-1]["warm_up"] = warm_up(server, uploads[shortest.name])
            # its own 1-client level first: the throughput ratio then compares runs minutes apart, not ten
            for clients in (1, top) if 1 in args.clients else (top,):
                level = run_level(server, uploads[shortest.name], clients, args.per_client[clients], args.max_seconds)
                report["levels"].append(level)
                record(server, f"{shortest.name} x {level['label']}", level)


def _server_entry(server: Server) -> dict:
    fusion = server.models.get("fusion", {})
    return {
        "label": server.label,
        "settings": server.settings,
        "provider": fusion.get("provider"),
        "fusion_version": fusion.get("version"),
        "worker_providers": {
            name: entry.get("execution_providers")
            for name, entry in {
                **server.models.get("face_models", {}),
                "text_encoder": server.models.get("text_encoder", {}),
            }.items()
        },
    }


if __name__ == "__main__":
    main()
