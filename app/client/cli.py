"""``phq-client`` / ``python -m app.client``: send an interview to a PHQ-8 server, print the estimate.

    phq-client predict --audio session.wav --transcript session.vtt
    phq-client predict --video interview.mp4 --json > answer.json
    phq-client batch study/ --out results.jsonl --url http://a:8000 --url http://b:8000 [--resume]
    PHQ_URL=https://phq.example PHQ_API_KEY=... phq-client predict --video interview.mp4 --async

Exit status: 0 an answer; 1 the server refused or failed (its problem is printed), no
connection, or the job failed; 2 bad usage or a local file that cannot be sent (nothing
was sent); 3 the server is overloaded or rate-limited (429/503: retry later); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from app.client import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_URL,
    InputFileError,
    Job,
    JobCancelledError,
    JobTimeoutError,
    PhqClient,
    PhqClientError,
    ProblemError,
    ServerUnreachableError,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_RETRY_LATER, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
PROG = "phq-client"
# errors, hints and job states for the person at the terminal (never the answer itself)
log = logging.getLogger("app.client")
BAR_WIDTH = 30
POLL_INTERVAL_S, MAX_POLL_INTERVAL_S = 0.5, 2.0  # job polling: quick at first, then every 2 s
REDRAW_S = 0.1  # at most ten redraws a second: a fast loopback upload must not flood the terminal


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def progress_bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """``[=========>          ]``: plain ASCII so any terminal draws it."""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(width * fraction)
    if filled >= width:
        return "[" + "=" * width + "]"
    return "[" + "=" * filled + ">" + " " * (width - filled - 1) + "]"


class StatusLine:
    """One line on stderr redrawn in place: the upload bar, then a timer while the server works,
    or a job's progress. Draws nothing unless ``enabled`` (stderr is a TTY and not --quiet)."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._width = 0
        self._started = time.monotonic()
        self._upload_started: float | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def _draw(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last_draw < REDRAW_S):
            return
        with self._lock:
            self._last_draw = now
            pad = max(0, self._width - len(text))  # blank out what a longer earlier line left
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
            self._width = len(text)

    def upload(self, sent: int, total: int) -> None:
        """The httpx body generator's progress callback."""
        now = time.monotonic()
        if self._upload_started is None:
            self._upload_started = now
        elapsed = max(now - self._upload_started, 1e-6)
        fraction = sent / total if total else 1.0
        rate = f"  {_size(sent / elapsed)}/s" if elapsed > 0.25 else ""  # a rate from a few ms is noise
        self._draw(
            f"uploading {progress_bar(fraction)} {fraction:4.0%}  {_size(sent)} / {_size(total)}{rate}",
            force=sent >= total,
        )
        if sent >= total:
            self._wait("uploaded; the server is working")

    def _wait(self, label: str) -> None:
        """A timer while the server processes (the sync request gives no progress of its own)."""
        if not self.enabled or self._ticker is not None:
            return
        started = time.monotonic()

        def tick() -> None:
            while not self._stop.wait(0.5):
                self._draw(f"{label}  {time.monotonic() - started:.0f} s", force=True)

        self._ticker = threading.Thread(target=tick, name="phq-client-status", daemon=True)
        self._ticker.start()

    def job(self, job: Job) -> None:
        self._stop_ticker()
        elapsed = time.monotonic() - self._started
        self._draw(
            f"job {job.job_id} {job.status:<9} {progress_bar(job.progress)} {job.progress:4.0%}  {elapsed:.0f} s",
            force=True,
        )

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join()
            self._ticker = None
            self._stop.clear()

    def finish(self) -> None:
        """Stop the timer and clear the line, so what follows starts at column 0."""
        self._stop_ticker()
        if self.enabled and self._width:
            with self._lock:
                self.stream.write("\r" + " " * self._width + "\r")
                self.stream.flush()
                self._width = 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Client of the PHQ-8 fusion service. Research use only: no answer is a diagnosis.",
        epilog="exit status: 0 answer, 1 server problem or no connection, 2 bad usage or local file, "
        "3 overloaded or rate-limited (retry later), 130 interrupted",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    predict = commands.add_parser(
        "predict",
        help="estimate PHQ-8 from an interview (video, audio, transcript)",
        description="Send an interview to POST /predict (or /jobs with --async) and print the estimate.",
    )
    server = predict.add_argument_group("server")
    server.add_argument(
        "--url",
        metavar="URL",
        default=os.environ.get("PHQ_URL", DEFAULT_URL),
        help=f"service URL (env PHQ_URL; {DEFAULT_URL})",
    )
    server.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get("PHQ_API_KEY"),
        help="API key, sent as a Bearer token (env PHQ_API_KEY, which keeps it out of the process list)",
    )
    server.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds to wait for the answer (with --async: for the job) (default {DEFAULT_TIMEOUT_S:g})",
    )
    inputs = predict.add_argument_group("interview (at least one)")
    inputs.add_argument("--video", metavar="PATH", help="mp4 / webm / mov; its audio track is used unless --audio")
    inputs.add_argument("--audio", metavar="PATH", help="wav, flac, ogg, mp3, m4a/aac, opus, webm")
    inputs.add_argument("--transcript", metavar="PATH", help="text, WebVTT, SRT, DAIC-WOZ TSV, E-DAIC CSV, JSON")
    inputs.add_argument("--transcript-text", metavar="TEXT", help="the transcript itself ('-': read standard input)")
    inputs.add_argument("--participant-speaker", metavar="LABEL", help="the patient's speaker label in the transcript")
    inputs.add_argument(
        "--trust-transcript",
        action="store_true",
        help="do not let the server check the transcript against the recording (check_transcript=false)",
    )
    inputs.add_argument("--model-version", type=int, metavar="N", help="require this served model version")
    output = predict.add_argument_group("output")
    output.add_argument("--no-timeline", action="store_true", help="ask for no per-window timeline")
    output.add_argument("--return-transcript", action="store_true", help="ask for the words speech recognition heard")
    output.add_argument("--json", action="store_true", help="print the answer JSON to stdout instead of a summary")
    output.add_argument(
        "--async", dest="use_jobs", action="store_true", help="submit to /jobs and poll it, showing the job's progress"
    )
    output.add_argument("-q", "--quiet", action="store_true", help="no progress display on stderr")
    predict.set_defaults(command_parser=predict)  # usage errors below show the predict usage

    stream = commands.add_parser(
        "stream",
        help="replay a recording as a live /stream session and print the updates",
        description="Replay FILE (its pictures as JPEG frames, its audio as 100-ms PCM blocks) over the /stream "
        "WebSocket, print each update, then the final estimate.",
    )
    stream.add_argument("file", metavar="FILE", help="the recording: a video (with or without audio) or an audio file")
    stream.add_argument("--audio", metavar="PATH", help="a separate audio recording (instead of FILE's own track)")
    stream.add_argument("--captions", metavar="PATH", help="live captions: a JSON list of {speaker, start, end, text}")
    stream.add_argument("--participant-speaker", metavar="LABEL", help="the patient's speaker label in the captions")
    stream.add_argument(
        "--realtime",
        action="store_true",
        help="send at the recording's own pace, as a live call (pace live); without it, a replay at socket speed",
    )
    stream.add_argument("--url", metavar="URL", default=os.environ.get("PHQ_URL", DEFAULT_URL), help="service URL")
    stream.add_argument("--api-key", metavar="KEY", default=os.environ.get("PHQ_API_KEY"), help="API key")
    stream.add_argument("--json", action="store_true", help="print the final answer JSON instead of a summary")
    stream.set_defaults(command_parser=stream)

    batch = commands.add_parser(
        "batch",
        help="score a whole study: a folder of recordings or a CSV list, one line per recording",
        description="Score every recording of SOURCE (a folder: parts sharing a name are one recording; a CSV: "
        "columns id, video, audio, transcript) on one or more servers, one line per recording in OUT as it is "
        "answered (JSON lines, or CSV for a .csv name). Retries 429/503 after Retry-After; never stops on one bad "
        "file; --resume skips what OUT already holds.",
    )
    batch.add_argument("source", metavar="DIR_OR_CSV", help="a folder of recordings, or a CSV list of them")
    batch.add_argument("--out", metavar="PATH", required=True, help="results: .jsonl (answers) or .csv (figures)")
    batch.add_argument("--concurrency", type=int, default=2, metavar="N", help="recordings in flight (default 2)")
    batch.add_argument("--resume", action="store_true", help="skip the recordings OUT already answers")
    batch.add_argument(
        "--url",
        metavar="URL",
        action="append",
        help=f"a server (repeat for several; env PHQ_URL; {DEFAULT_URL})",
    )
    batch.add_argument("--api-key", metavar="KEY", default=os.environ.get("PHQ_API_KEY"), help="API key")
    batch.add_argument("--timeout", metavar="SECONDS", type=float, default=DEFAULT_TIMEOUT_S, help="per request")
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress line on stderr")
    batch.set_defaults(command_parser=batch)
    return parser


@contextmanager
def _diagnostics_to(stream: TextIO) -> Iterator[None]:
    """Send the client's log lines (errors, hints, job states) to ``stream`` as plain text
    for one command; the answer itself goes to stdout, never through logging."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level, propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


def _error(message: str) -> None:
    log.error("%s: %s", PROG, message)


def _report_problem(problem: ProblemError) -> int:
    suffix = f" (request id {problem.request_id})" if problem.request_id else ""
    _error(f"{problem}{suffix}")
    for entry in problem.errors[:10]:
        location = ".".join(str(part) for part in entry.get("loc", [])) or "request"
        log.error("  %s: %s", location, entry.get("msg", ""))
    if problem.status == 401:
        log.warning("  hint: give a key with --api-key or PHQ_API_KEY")
    if problem.retryable:
        when = f"after {problem.retry_after_s:g} s" if problem.retry_after_s is not None else "later"
        log.warning("  hint: the server is busy or rate-limiting; retry %s", when)
        return EXIT_RETRY_LATER
    return EXIT_FAILED


def _run_job(client: PhqClient, form: dict[str, Any], args: argparse.Namespace, status: StatusLine) -> dict:
    job = client.submit_job(**form, on_progress=status.upload)
    last_state: list[str] = []

    def show(update: Job) -> None:
        status.job(update)
        # without a TTY, one line per state change: enough for a log, and the id to look the job up
        if not status.enabled and not args.quiet and last_state[-1:] != [update.status]:
            last_state.append(update.status)
            log.info("%s: job %s %s", PROG, update.job_id, update.status)

    try:
        return client.wait_for_job(
            job,
            on_update=show,
            poll_interval_s=POLL_INTERVAL_S,
            max_interval_s=MAX_POLL_INTERVAL_S,
            timeout_s=args.timeout,
        )
    except KeyboardInterrupt:
        status.finish()
        _cancel(client, job.job_id)
        raise
    except JobTimeoutError:
        status.finish()
        _cancel(client, job.job_id)
        raise


def _cancel(client: PhqClient, job_id: str) -> None:
    try:
        client.cancel_job(job_id)
        _error(f"cancelled job {job_id}")
    except (PhqClientError, KeyboardInterrupt) as exc:
        _error(f"could not cancel job {job_id} ({exc or type(exc).__name__}); it ends on its own")


def run_predict(
    args: argparse.Namespace,
    client: PhqClient,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The ``predict`` command with a ready client; returns the exit status."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    with _diagnostics_to(stderr):
        return _predict(args, client, stdout, stderr)


def _predict(args: argparse.Namespace, client: PhqClient, stdout: TextIO, stderr: TextIO) -> int:
    transcript_text = sys.stdin.read() if args.transcript_text == "-" else args.transcript_text
    form: dict[str, Any] = {
        "video": args.video,
        "audio": args.audio,
        "transcript": args.transcript,
        "transcript_text": transcript_text,
        "participant_speaker": args.participant_speaker,
        "include_timeline": not args.no_timeline,
        "return_transcript": args.return_transcript,
        "trust_transcript": args.trust_transcript,
        "model_version": args.model_version,
    }
    status = StatusLine(stderr, enabled=not args.quiet and stderr.isatty())
    try:
        answer = (
            _run_job(client, form, args, status) if args.use_jobs else client.predict(**form, on_progress=status.upload)
        )
    except InputFileError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except ProblemError as problem:
        status.finish()
        return _report_problem(problem)
    except (ServerUnreachableError, JobCancelledError, JobTimeoutError) as exc:
        status.finish()
        hint = "; is the server running? (--url or PHQ_URL)" if "cannot connect" in str(exc) else ""
        _error(f"{exc}{hint}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        status.finish()
        _error("interrupted")
        return EXIT_INTERRUPTED
    except PhqClientError as exc:
        status.finish()
        _error(str(exc))
        return EXIT_FAILED
    finally:
        status.finish()
    if args.json:
        json.dump(answer, stdout, indent=2)
        stdout.write("\n")
        return EXIT_OK
    from app.client.summary import format_summary  # pydantic models: only needed for the summary

    try:
        stdout.write(format_summary(answer) + "\n")
    except PhqClientError as exc:
        _error(str(exc))
        return EXIT_FAILED
    return EXIT_OK


def stream_url(url: str) -> str:
    """The /stream WebSocket URL of a service URL (http -> ws, https -> wss)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https", "ws", "wss"):
        raise ValueError(f"the URL must start with http://, https://, ws:// or wss://, not {scheme}://")
    ws = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    return f"{ws}://{rest.rstrip('/')}/stream"


def _update_line(message: dict[str, Any]) -> str | None:
    kind = message.get("type")
    if kind == "ready":
        return f"session {message.get('session')} ready"
    if kind == "warning":
        return "warning: " + str(message.get("message"))
    if kind == "window":
        span = f"{message['start_s']:.0f}-{message['end_s']:.0f} s"
        return f"window {message['index'] + 1} ({span}): total {message['total']:.1f}"
    if kind == "estimate":
        at = f"estimate at {message['stream_s']:.0f} s"
        if message.get("total") is None:
            states = message.get("modalities", {})
            reasons = "; ".join(
                f"{name}: {state.get('reason')}" for name, state in states.items() if state.get("reason")
            )
            return f"{at}: not yet ({reasons})"
        interval = message["interval"]
        return (
            f"{at}: total {message['total']:.1f} [{interval['low']:.1f}-{interval['high']:.1f}], {message['severity']}"
        )
    return None


def run_stream(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """The ``stream`` command; returns the exit status."""
    from pathlib import Path

    from app.client.stream import config_message, has_audio, replay_frames, run_session

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    with _diagnostics_to(stderr):
        try:
            url = stream_url(args.url)
        except ValueError as exc:
            _error(str(exc))
            return EXIT_USAGE
        file = Path(args.file)
        audio = Path(args.audio) if args.audio else None
        captions = Path(args.captions) if args.captions else None
        try:
            import av

            with av.open(str(file)) as container:
                video = file if container.streams.video else None
            sound = has_audio(audio) if audio is not None else has_audio(file)
        except (OSError, av.error.FFmpegError) as exc:
            _error(f"cannot read {file.name}: {type(exc).__name__}")
            return EXIT_USAGE
        config = config_message(
            video, sound, captions is not None, participant_speaker=args.participant_speaker, api_key=args.api_key
        )

        def show(message: dict[str, Any]) -> None:
            line = _update_line(message)
            if line is not None and not args.json:
                stdout.write(line + "\n")
                stdout.flush()

        try:
            result = run_session(
                url,
                config,
                replay_frames(video, audio or (file if video is None else None), captions),
                realtime=args.realtime,
                on_message=show,
            )
        except OSError as exc:
            _error(f"cannot connect to {url}: {type(exc).__name__}; is the server running? (--url or PHQ_URL)")
            return EXIT_FAILED
        final = next((m for m in result.messages if m.get("type") == "final"), None)
        if final is None:
            error = next((m for m in result.messages if m.get("type") == "error"), None)
            if error is None:
                _error(f"the session ended without an answer (close code {result.close_code})")
                return EXIT_FAILED
            problem = error["problem"]
            _error(f"{problem.get('status')} {problem.get('title')}: {problem.get('detail')}")
            return EXIT_RETRY_LATER if problem.get("status") in (429, 503) else EXIT_FAILED
        if args.json:
            json.dump(final["answer"], stdout, indent=2)
            stdout.write("\n")
            return EXIT_OK
        from app.client.summary import format_summary

        stdout.write(format_summary(final["answer"]) + "\n")
        return EXIT_OK


def progress_text(answered: int, failed: int, total: int) -> str:
    """The batch's progress line."""
    finished = answered + failed
    return f"batch {progress_bar(finished / total if total else 1.0)} {finished}/{total}  ({failed} failed)"


def run_batch_command(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """The ``batch`` command; returns the exit status (0: every recording answered)."""
    from pathlib import Path

    from app.client.batch import recordings_in, run_batch

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    usage_error = args.command_parser.error
    if args.concurrency < 1:
        usage_error("--concurrency must be at least 1")
    urls = args.url or [os.environ.get("PHQ_URL", DEFAULT_URL)]
    with _diagnostics_to(stderr):
        try:
            recordings = recordings_in(Path(args.source))
        except (InputFileError, OSError) as exc:
            _error(str(exc) if isinstance(exc, InputFileError) else f"cannot read {args.source}: {type(exc).__name__}")
            return EXIT_USAGE
        try:
            clients = [PhqClient(url, api_key=args.api_key, timeout=args.timeout) for url in urls]
        except ValueError as exc:
            usage_error(str(exc))
        status = StatusLine(stderr, enabled=not args.quiet and stderr.isatty())

        def show(answered: int, failed: int, total: int) -> None:
            status._draw(progress_text(answered, failed, total), force=answered + failed == total)

        try:
            summary = run_batch(recordings, clients, Path(args.out), args.concurrency, args.resume, on_progress=show)
        except KeyboardInterrupt:
            status.finish()
            _error(f"interrupted; {args.out} holds what was answered: run again with --resume")
            return EXIT_INTERRUPTED
        finally:
            for client in clients:
                client.close()
        status.finish()
        for line in summary.lines():
            stdout.write(line + "\n")
        return EXIT_OK if not summary.failed else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    usage_error = args.command_parser.error
    if args.command == "stream":
        return run_stream(args)
    if args.command == "batch":
        return run_batch_command(args)
    if not (args.video or args.audio or args.transcript or args.transcript_text):
        usage_error("nothing to send: give --video, --audio, --transcript or --transcript-text")
    if args.transcript and args.transcript_text is not None:
        usage_error("give --transcript or --transcript-text, not both")
    if args.timeout <= 0:
        usage_error("--timeout must be positive")
    try:
        client = PhqClient(args.url, api_key=args.api_key, timeout=args.timeout)
    except ValueError as exc:
        usage_error(str(exc))
    with client:
        return run_predict(args, client)
