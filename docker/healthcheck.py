"""Container health check: exit 0 when the service's /healthz answers 200, else 1.

The images have no curl; Python is there. Asks loopback on PHQ_PORT, bypassing any proxy
set in the environment. /healthz must be open (PHQ_OPEN_HEALTH, the default).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def healthy(port: str, timeout_s: float = 4.0) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=timeout_s) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


if __name__ == "__main__":
    sys.exit(0 if healthy(os.environ.get("PHQ_PORT", "8000")) else 1)
