"""``gemini-batch-emulator``: serve the local Gemini API emulator until interrupted."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiohttp import web

from .app import create_app
from .batches import RowErrors
from .faults import FaultConfig
from .state import EmulatorConfig
from .tiers import TierConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gemini-batch-emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", action="append", default=[],
                        help="a key to accept (repeatable); by default any non-empty key is accepted")
    parser.add_argument("--batch-pending-seconds", type=float, default=1.0,
                        help="seconds a batch job stays in BATCH_STATE_PENDING (default 1; live: minutes)")
    parser.add_argument("--batch-running-seconds", type=float, default=2.0,
                        help="seconds a batch job stays in BATCH_STATE_RUNNING, at least the time its rows take "
                             "(default 2; live: up to 24 h)")
    parser.add_argument("--batch-get-latency", type=float, default=0.0,
                        help="seconds a batch job's GET takes (default 0; live: a round trip to Google)")
    parser.add_argument("--data-dir", type=Path, help="where file contents are kept (default: a temp folder)")
    parser.add_argument("--rpm", type=int, help="requests per minute per key and model (generateContent)")
    parser.add_argument("--tpm", type=int, help="tokens per minute per key and model (generateContent)")
    parser.add_argument("--quota-window-seconds", type=float, default=60.0,
                        help="sliding window the quotas are enforced over (shorter: the same rate, more evenly)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each generateContent takes")
    parser.add_argument("--latency-jitter", type=float, default=0.0, help="± seconds, uniform, around --latency")
    parser.add_argument("--error-500-rate", type=float, default=0.0, help="share of calls answered 500")
    parser.add_argument("--error-503-rate", type=float, default=0.0, help="share of calls answered 503")
    parser.add_argument("--reset-rate", type=float, default=0.0, help="share of calls whose connection is reset")
    parser.add_argument("--slow-rate", type=float, default=0.0, help="share of calls slowed by --slow-seconds")
    parser.add_argument("--slow-seconds", type=float, default=30.0)
    parser.add_argument("--fault-latency", type=float, default=0.0,
                        help="seconds before a 500, 503 or reset is answered (default: at once)")
    parser.add_argument("--batch-row-error-rate", type=float, default=0.0,
                        help="share of batch rows answered with an error (the same rows in every run)")
    parser.add_argument("--batch-row-error-code", type=int, default=14,
                        help="gRPC canonical code of those row errors, as live output lines carry (3, 4, 8, 13, 14)")
    parser.add_argument("--batch-outcome", choices=["succeed", "fail", "fail-once", "expire", "stall"],
                        default="succeed", help="how batch jobs end (fail-once: the first fails, later ones succeed)")
    parser.add_argument("--batch-output-fault", choices=["none", "malformed", "truncated"], default="none",
                        help="corrupt batch output files: some lines not JSON, or the file cut short")
    parser.add_argument("--max-enqueued-tokens", type=int,
                        help="estimated tokens of a model's unfinished batch jobs at most (429 on create beyond)")
    parser.add_argument("--max-concurrent-jobs", type=int,
                        help="unfinished batch jobs at most (429 on create beyond)")
    parser.add_argument("--max-file-bytes", type=int, default=2 * 1024**3, help="the largest upload")
    parser.add_argument("--gcs-endpoint", help="Cloud Storage (emulator) URL for Vertex AI batch prediction jobs")
    parser.add_argument("--flex-latency", type=float, default=60.0,
                        help="seconds a Flex call (service_tier flex) takes beyond the usual (live: minutes)")
    parser.add_argument("--flex-shed-rate", type=float, default=0.0, help="share of Flex calls shed with 503")
    parser.add_argument("--priority-fallback-rate", type=float, default=0.0,
                        help="share of Priority calls served at Standard (capacity short)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault, latency and shedding draws")
    args = parser.parse_args(argv)
    if args.port <= 0 or min(args.batch_pending_seconds, args.batch_running_seconds, args.batch_get_latency) < 0:
        parser.error("--port must be positive and the batch durations not negative")
    try:
        faults = FaultConfig(
            latency_s=args.latency, latency_jitter_s=args.latency_jitter, error_500_rate=args.error_500_rate,
            error_503_rate=args.error_503_rate, reset_rate=args.reset_rate, slow_rate=args.slow_rate,
            slow_s=args.slow_seconds, fault_latency_s=args.fault_latency, seed=args.seed,
        )
        row_errors = RowErrors(rate=args.batch_row_error_rate, code=args.batch_row_error_code)
        tiers = TierConfig(flex_latency_s=args.flex_latency, flex_shed_rate=args.flex_shed_rate,
                           priority_fallback_rate=args.priority_fallback_rate, seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    config = EmulatorConfig(
        rpm=args.rpm,
        tpm=args.tpm,
        quota_window_s=args.quota_window_seconds,
        faults=faults,
        api_keys=frozenset(args.api_key),
        batch_pending_s=args.batch_pending_seconds,
        batch_running_s=args.batch_running_seconds,
        batch_get_latency_s=args.batch_get_latency,
        data_dir=args.data_dir,
        batch_row_errors=row_errors,
        batch_outcome=args.batch_outcome,
        batch_output_fault=args.batch_output_fault,
        max_enqueued_tokens=args.max_enqueued_tokens,
        max_concurrent_jobs=args.max_concurrent_jobs,
        max_file_bytes=args.max_file_bytes,
        gcs_endpoint=args.gcs_endpoint,
        tiers=tiers,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    base_url = f"http://{args.host}:{args.port}"
    print(f"Gemini API emulator on {base_url}", flush=True)
    web.run_app(create_app(config, base_url), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
