"""Build-time warm-up: start the real service once, wait for /readyz, stop it.

Getting ready runs the serve-time contract check and every worker's warm-up, which compile
librosa's numba kernels (~30 s) into NUMBA_CACHE_DIR, so a container starts warm; and it
loads every model from PHQ_MODEL_STORE, so an image whose models do not load fails its
build. Uses the public entry point (`python -m app`, /readyz) only, not app internals.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

READY_TIMEOUT_S = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url + "/readyz", timeout=5) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def cached_kernels(cache_dir: Path) -> int:
    return sum(1 for _ in cache_dir.rglob("*.nbi"))  # one numba index per cached function


def main() -> int:
    cache_dir = Path(os.environ.get("NUMBA_CACHE_DIR", ""))
    if not cache_dir.is_dir():
        print("NUMBA_CACHE_DIR must name an existing directory", file=sys.stderr)
        return 1
    port = free_port()
    spool = Path(tempfile.mkdtemp(prefix="phq-warm-"))
    log_path = spool.parent / (spool.name + ".log")
    env = {
        **os.environ,
        "PHQ_HOST": "127.0.0.1",
        "PHQ_PORT": str(port),
        "PHQ_SPOOL_DIR": str(spool),
        "PHQ_WORKERS": "1",
        "PHQ_PROVIDERS": "cpu",  # no GPU at build time; the kernels are the same
    }
    started = time.monotonic()
    try:
        with open(log_path, "wb") as log:
            server = subprocess.Popen([sys.executable, "-m", "app"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while not ready(f"http://127.0.0.1:{port}"):
                if server.poll() is not None or time.monotonic() - started > READY_TIMEOUT_S:
                    print("the service did not get ready:\n" + log_path.read_text(errors="replace")[-4000:])
                    return 1
                time.sleep(1)
        finally:
            server.terminate()
            server.wait(timeout=60)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
        log_path.unlink(missing_ok=True)
    kernels = cached_kernels(cache_dir)
    if kernels == 0:
        print(f"the service got ready but nothing was cached in {cache_dir}", file=sys.stderr)
        return 1
    print(f"ready in {time.monotonic() - started:.0f} s; {kernels} numba kernels cached in {cache_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
