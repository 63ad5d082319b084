"""Benchmark of GeminiBatchJobTrigger as a triggerer runs it: one event loop, many triggers.

The parent starts the emulator (its own process) with batch jobs that stay RUNNING and creates one
job per trigger; a fresh child process, which has not imported google.genai, does the measuring:

1. it starts one trigger while a probe measures how late the loop wakes it (every 10 ms), until
   that trigger's first poll has been answered: ``first_trigger_stall_ms`` is the longest wake-up
   delay in that span (imports, TLS context, client and first response all included);
2. it starts the other triggers; ``startup_s`` is the time until every trigger has polled once,
   ``startup_loop_lag_max_ms`` the longest wake-up delay meanwhile;
3. then it measures for ``--seconds``: ``loop_lag_p99_ms``, max and median, ``polls`` (job polls
   answered, counted from the trigger's progress lines) and ``cpu_ms_per_poll`` (the child's CPU
   milliseconds per poll, logging included);
4. the parent cancels the jobs, and every trigger must then end.

Prints one JSON object. The targets (issue 14): first stall < 50 ms; 1000 triggers polling every
5 s with p99 < 100 ms and <= 1 ms CPU per poll; 10,000 triggers at the operators' defaults
(``--triggers 10000 --poll-interval 30 --max-poll-interval 300 --jobs 1000``).

    .venv/bin/python benchmarks/triggerer.py [--triggers 1000] [--poll-interval 5]
        [--max-poll-interval S] [--seconds 30] [--jobs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

API_KEY = "bench-triggerer"


class PollCounter:
    """Counts the trigger's progress lines (one per poll of a running job) in what the process
    writes to its standard output, where Airflow's logging sends a trigger's lines outside a
    triggerer; the lines themselves are dropped."""

    polls = 0

    @classmethod
    def capture_stdout(cls) -> int:
        """Point file descriptor 1 at a pipe read by a counting thread; returns the old descriptor."""
        read_end, write_end = os.pipe()
        saved = os.dup(1)
        os.dup2(write_end, 1)
        os.close(write_end)
        threading.Thread(target=cls._count, args=(read_end,), daemon=True).start()
        return saved

    @classmethod
    def _count(cls, read_end: int) -> None:
        tail = b""
        while chunk := os.read(read_end, 1 << 16):
            text = tail + chunk
            cls.polls += text.count(b"requests done")
            tail = text[-16:]
            cls.polls -= tail.count(b"requests done")  # counted again with the next chunk


def create_jobs(base_url: str, count: int) -> list[str]:
    import io

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


class Probe:
    """Wakes every 10 ms and records how late, in ms."""

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            self.lags.append((time.monotonic() - before - 0.01) * 1000)


async def measure(names: list[str], poll_interval: float, max_poll_interval: float, seconds: float,
                  done_file: Path) -> dict[str, Any]:
    assert "google.genai" not in sys.modules, "the child must start without google.genai"

    def trigger(name: str) -> Any:
        # Imported on the loop, as the triggerer imports a trigger's class when it first runs one.
        from gemini_batch_provider.triggers.batch import GeminiBatchJobTrigger

        return GeminiBatchJobTrigger(job_names=[name], gemini_conn_id="gemini_default", poll_interval=poll_interval,
                                     max_poll_interval=max_poll_interval)

    async def drain(t: Any) -> None:
        async for _ in t.run():
            return

    probe = Probe()
    prober = asyncio.create_task(probe.run())
    await asyncio.sleep(0.05)
    start = len(probe.lags)
    await asyncio.sleep(0)  # the probe is waiting: what follows delays its next wake-up
    tasks = [asyncio.create_task(drain(trigger(names[0])))]
    while PollCounter.polls == 0:  # the first trigger's first poll answered
        await asyncio.sleep(0.005)
        if tasks[0].done():
            tasks[0].result()
            raise RuntimeError("the first trigger ended before its first poll")
    first_stall = max(probe.lags[start:], default=0.0)

    tasks += [asyncio.create_task(drain(trigger(name))) for name in names[1:]]
    probe.lags.clear()
    started = time.monotonic()
    while PollCounter.polls < len(names):  # every trigger has polled once
        await asyncio.sleep(0.05)
    startup_s, startup_lag_max = time.monotonic() - started, max(probe.lags, default=0.0)
    probe.lags.clear()
    polls, cpu = PollCounter.polls, time.process_time()
    await asyncio.sleep(seconds)
    polls, cpu_used = PollCounter.polls - polls, time.process_time() - cpu
    prober.cancel()
    lags = sorted(probe.lags)
    done_file.write_text("measured")  # the parent now cancels every job; each trigger must end
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=max_poll_interval * 1.5 + 120)
    return {
        "triggers": len(names),
        "poll_interval_s": poll_interval,
        "max_poll_interval_s": max_poll_interval,
        "first_trigger_stall_ms": round(first_stall, 1),
        "startup_s": round(startup_s, 1),
        "startup_loop_lag_max_ms": round(startup_lag_max, 1),
        "loop_lag_p99_ms": round(lags[int(len(lags) * 0.99)], 1),
        "loop_lag_max_ms": round(lags[-1], 1),
        "loop_lag_median_ms": round(statistics.median(lags), 1),
        "polls": polls,
        "cpu_ms_per_poll": round(1000 * cpu_used / polls, 3) if polls else None,
    }


def child(args: argparse.Namespace) -> None:
    import airflow.triggers.base  # noqa: F401  (loaded in a triggerer before any trigger)

    names = json.loads(Path(args.names).read_text())
    saved = PollCounter.capture_stdout()
    try:
        result = asyncio.run(measure(names, args.poll_interval, args.max_poll_interval, args.seconds,
                                     Path(args.names + ".done")))
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
    print(json.dumps(result), flush=True)


def parent(args: argparse.Namespace) -> None:
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from online import Emulator  # the same emulator process helper

    # The SDK's request log lines go to /dev/null: stdout holds only the figures.
    stdout = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
    emulator = Emulator({"latency": 0, "emulator": ["--batch-outcome", "stall", "--batch-pending-seconds", "0"]})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            names_file = Path(tmp) / "names.json"
            jobs = create_jobs(emulator.url, min(args.triggers, args.jobs or args.triggers))
            names = [jobs[i % len(jobs)] for i in range(args.triggers)]  # a job per trigger, or shared
            names_file.write_text(json.dumps(names))
            env = {**os.environ, "AIRFLOW_CONN_GEMINI_DEFAULT": json.dumps(
                {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": emulator.url}})}
            measuring = subprocess.Popen(
                [sys.executable, __file__, "--child", str(names_file), "--poll-interval", str(args.poll_interval),
                 "--max-poll-interval", str(args.max_poll_interval), "--seconds", str(args.seconds)],
                env=env, stdout=subprocess.PIPE, text=True)
            done = Path(f"{names_file}.done")
            while not done.exists() and measuring.poll() is None:
                time.sleep(0.2)  # a benchmark's own pacing, not a test's synchronisation
            cancel_jobs(emulator.url, jobs)
            out, _ = measuring.communicate()
            if measuring.returncode:
                raise SystemExit(f"the measuring process failed ({measuring.returncode})")
            sys.stdout.flush()
            os.dup2(stdout, 1)
            print(out.strip(), flush=True)
    finally:
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--max-poll-interval", type=float, default=None, help="default: the poll interval")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=None,
                        help="distinct jobs, shared round-robin (default: one per trigger); the emulator writes "
                             "its whole state on every create, so 10,000 jobs take long to make")
    parser.add_argument("--child", metavar="NAMES_FILE", dest="names", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.max_poll_interval is None:
        args.max_poll_interval = args.poll_interval
    (child if args.names else parent)(args)


if __name__ == "__main__":
    main()
