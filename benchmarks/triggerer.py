"""Benchmark of many GeminiBatchJobTrigger instances in one event loop, as a triggerer runs them.

Starts the emulator (its own process) with batch jobs that stay RUNNING, creates one job per
trigger, runs ``--triggers`` triggers (each with its own client, as in the triggerer) for
``--seconds`` while a probe measures how late the loop wakes it (every 10 ms), then cancels the
jobs so every trigger ends. Prints one JSON object: ``triggers``, ``poll_interval_s``,
``loop_lag_p99_ms`` (and the max), ``polls``, ``cpu_s_per_poll`` (this process's CPU seconds per
job poll, progress read included).

    .venv/bin/python benchmarks/triggerer.py [--triggers 1000] [--poll-interval 5] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from online import Emulator  # the same emulator process helper

API_KEY = "bench-triggerer"


class CountingTrigger:
    """Wraps GeminiBatchJobTrigger's poll to count polls (one per unfinished job)."""

    polls = 0

    @classmethod
    def make(cls, **kwargs: Any) -> Any:
        from gemini_batch_provider.core.states import TERMINAL
        from gemini_batch_provider.triggers.batch import GeminiBatchJobTrigger

        class Counting(GeminiBatchJobTrigger):
            async def _poll(self, client: Any, latest: dict[str, dict[str, Any]]) -> None:
                cls.polls += sum(job["state"] not in TERMINAL for job in latest.values())
                await super()._poll(client, latest)

        return Counting(**kwargs)


def create_jobs(base_url: str, count: int) -> list[str]:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=base_url))
    line = json.dumps({"key": "a", "request": {"contents": [{"parts": [{"text": "Hi."}], "role": "user"}]}}) + "\n"
    src = client.files.upload(file=io.BytesIO(line.encode()), config={"mime_type": "jsonl"}).name
    return [client.batches.create(model="gemini-2.5-flash", src=src).name for _ in range(count)]


def cancel_jobs(base_url: str, names: list[str]) -> None:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=base_url))
    for name in names:
        client.batches.cancel(name=name)


async def measure(names: list[str], poll_interval: float, seconds: float, base_url: str) -> dict[str, Any]:
    triggers = [CountingTrigger.make(job_names=[name], gemini_conn_id="gemini_default", poll_interval=poll_interval,
                                     max_poll_interval=poll_interval) for name in names]

    async def drain(trigger: Any) -> None:
        async for _ in trigger.run():
            return

    lags: list[float] = []

    async def probe() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append((time.monotonic() - before - 0.01) * 1000)

    cpu = time.process_time()
    tasks = [asyncio.create_task(drain(t)) for t in triggers]
    prober = asyncio.create_task(probe())
    await asyncio.sleep(seconds)
    polls, cpu_used = CountingTrigger.polls, time.process_time() - cpu
    prober.cancel()
    await asyncio.to_thread(cancel_jobs, base_url, names)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=poll_interval * 3 + 60)
    lags.sort()
    return {
        "triggers": len(triggers),
        "poll_interval_s": poll_interval,
        "loop_lag_p99_ms": round(lags[int(len(lags) * 0.99)], 1),
        "loop_lag_max_ms": round(lags[-1], 1),
        "loop_lag_median_ms": round(statistics.median(lags), 1),
        "polls": polls,
        "cpu_s_per_poll": round(cpu_used / polls, 5) if polls else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    emulator = Emulator({"latency": 0, "emulator": ["--batch-outcome", "stall", "--batch-pending-seconds", "0"]})
    try:
        names = create_jobs(emulator.url, args.triggers)
        os.environ["AIRFLOW_CONN_GEMINI_DEFAULT"] = json.dumps(
            {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": emulator.url}})
        # The triggers' log lines go where Airflow's logging sends them (stdout here): to /dev/null,
        # written all the same, so that stdout holds only the figures.
        stdout = os.dup(1)
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            try:
                result = asyncio.run(measure(names, args.poll_interval, args.seconds, emulator.url))
            finally:
                sys.stdout.flush()
                os.dup2(stdout, 1)
        print(json.dumps(result), flush=True)
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
