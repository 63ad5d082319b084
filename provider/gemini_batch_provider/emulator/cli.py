"""``gemini-batch-emulator``: serve the local Gemini API emulator until interrupted."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiohttp import web

from .app import EmulatorConfig, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gemini-batch-emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", action="append", default=[],
                        help="a key to accept (repeatable); by default any non-empty key is accepted")
    parser.add_argument("--batch-pending-seconds", type=float, default=1.0,
                        help="time a batch job stays in BATCH_STATE_PENDING")
    parser.add_argument("--batch-running-seconds", type=float, default=2.0,
                        help="time a batch job stays in BATCH_STATE_RUNNING (at least the time it takes)")
    parser.add_argument("--data-dir", type=Path, help="where file contents are kept (default: a temp folder)")
    args = parser.parse_args(argv)
    if args.port <= 0 or args.batch_pending_seconds < 0 or args.batch_running_seconds < 0:
        parser.error("--port must be positive and the batch durations not negative")
    config = EmulatorConfig(
        api_keys=frozenset(args.api_key),
        batch_pending_s=args.batch_pending_seconds,
        batch_running_s=args.batch_running_seconds,
        data_dir=args.data_dir,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    base_url = f"http://{args.host}:{args.port}"
    print(f"Gemini API emulator on {base_url}", flush=True)
    web.run_app(create_app(config, base_url), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
