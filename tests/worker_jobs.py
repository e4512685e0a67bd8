"""Small jobs and initializers for worker-pool tests: module-level, so spawned workers can
import them by name. Kept free of heavy imports so a test worker starts in a fraction of a
second."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

from app.errors import CorruptMediaError

SECRET = "patient said: my-secret-transcript-line"


def echo(value: Any) -> Any:
    return value


def whoami(_: Any = None) -> int:
    return os.getpid()


def sleep(seconds: float) -> int:
    """Sleep, then answer with the worker's pid (to tell which worker ran it)."""
    time.sleep(seconds)
    return os.getpid()


def raise_service_error(detail: str) -> None:
    raise CorruptMediaError(detail)


def raise_secret_value_error(_: Any = None) -> None:
    raise ValueError(SECRET)


def allocate(n_bytes: int) -> int:
    block = bytearray(n_bytes)  # zero-filled: really mapped, not just reserved
    return len(block)


def kill_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(30)  # not reached: the signal ends the process


def address_space_limit(_: Any = None) -> int:
    return resource.getrlimit(resource.RLIMIT_AS)[0]


JOBS = {
    job.__name__: job
    for job in (
        echo,
        whoami,
        sleep,
        raise_service_error,
        raise_secret_value_error,
        allocate,
        kill_self,
        address_space_limit,
    )
}


def perform(task: tuple[str, Any]) -> Any:
    """The pools' target: ``(job name, argument)``, so one pool serves every kind of job."""
    name, argument = task
    return JOBS[name](argument)


def quick_init() -> None:
    """A cheap stand-in for the service's model warm-up."""


def init_unless_blocked(block_file: str) -> None:
    """Refuse to start while ``block_file`` exists (a replacement that cannot start)."""
    if Path(block_file).exists():
        raise RuntimeError(f"blocked by {block_file} ({SECRET})")


def failing_init() -> None:
    raise RuntimeError(SECRET)



# the environment as this module found it when the worker imported it: a pool that names its
# target by "module:function" sets its env defaults first (numpy reads thread counts at import)
ENVIRONMENT_AT_IMPORT = dict(os.environ)


def environment(names: list[str]) -> dict[str, str | None]:
    """The worker's values of ``names`` when it imported this module."""
    return {name: ENVIRONMENT_AT_IMPORT.get(name) for name in names}
