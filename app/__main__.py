"""``python -m app``: serve with the settings from the environment (PHQ_*).

python -m app              serve on PHQ_HOST:PHQ_PORT (SIGTERM: in-flight requests get
                           PHQ_SHUTDOWN_GRACE_S to finish, new connections are refused)
python -m app hash-key     read an API key on stdin, print the sha256 digest that goes
                           into PHQ_API_KEY_HASHES (the key itself is never stored)
python -m app stream-protocol
                           print the /stream protocol as JSON Schemas (docs/stream-protocol.json)
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="PHQ-8 fusion service")
    parser.add_argument("command", nargs="?", choices=["serve", "hash-key", "stream-protocol"], default="serve")
    args = parser.parse_args(argv)
    if args.command == "hash-key":
        from app.api.deps import key_digest

        key = sys.stdin.readline().strip()
        if not key:
            parser.error('give the key on stdin, e.g. `printf %s "$KEY" | python -m app hash-key`')
        sys.stdout.write(key_digest(key) + "\n")
        return 0
    if args.command == "stream-protocol":
        import json

        from app.stream.protocol import message_schemas

        sys.stdout.write(json.dumps(message_schemas(), indent=2, sort_keys=True) + "\n")
        return 0

    import uvicorn

    from app.config import Settings
    from app.main import configure_logging, create_app

    settings = Settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,  # access lines carry client addresses
        log_config=None,  # keep the JSON logging configured above
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
