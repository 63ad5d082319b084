"""Benchmark of the online engine against two common patterns, on the local emulator.

Prints one JSON object per scenario on stdout: ``scenario``, ``rows``, ``bound_s`` (the fastest
the scenario allows), ``wall_s``, ``efficiency`` (bound_s / wall_s), ``responses_429``,
``rows_lost``, the CPU seconds the engine's process and the emulator used (``client_cpu_s``,
``emulator_cpu_s``), and the same figures for the baselines under ``baselines``: ``sequential`` (a for
loop; run on a 50-row sample and scaled to the scenario's rows) and ``semaphore_gather``
(``asyncio.gather`` under a Semaphore, retrying 429/5xx three times after ``2**attempt`` s, as the
Gemini async cookbook does). Each scenario starts its own emulator process.

In ``faults`` the emulator answers a 503 or a reset at once, as an overloaded front end does;
``--fault-latency 0.5`` makes each fault take the full latency first. Then even a client with no
overhead and no backoff is capped near 0.81: the ~7% of rows that fault in the last wave need
another 0.5 s call after everything else is done.

``flex`` runs every call on the Flex tier (its minutes scaled down to 0.5 s, a tenth of the calls
shed with 503): ``cost_usd`` at the tier that served each row beside ``standard_cost_usd``, the
same tokens at Standard's price.

    .venv/bin/python benchmarks/online.py [--scenario latency|quota|faults|flex] [--fault-latency S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from google import genai
from google.genai import errors, types

from gemini_batch_provider.core.cost import cost_usd, price_of
from gemini_batch_provider.core.online import OnlineEngine, OnlineSettings
from gemini_batch_provider.core.requests import RequestSpec, build_requests
from gemini_batch_provider.emulator import free_port

MODEL = "gemini-2.5-flash"
SEQUENTIAL_SAMPLE = 50
SCENARIOS: dict[str, dict[str, Any]] = {
    "latency": {"rows": 1000, "latency": 0.5, "concurrency": 100, "emulator": []},
    "quota": {"rows": 600, "latency": 0.2, "concurrency": 100, "rpm": 3000,
              "emulator": ["--rpm", "3000", "--quota-window-seconds", "1"]},
    "faults": {"rows": 1000, "latency": 0.5, "concurrency": 100,
               "emulator": ["--error-503-rate", "0.05", "--reset-rate", "0.02"]},
    # Flex: each call's minutes scaled down to 0.5 s, and a tenth of the calls shed with 503.
    "flex": {"rows": 1000, "latency": 0.5, "concurrency": 100, "tier": "flex",
             "emulator": ["--flex-latency", "0.5", "--flex-shed-rate", "0.1"]},
}


def bound(spec: dict[str, Any]) -> float:
    if "rpm" in spec:
        return spec["rows"] / (spec["rpm"] / 60)
    return spec["rows"] * spec["latency"] / spec["concurrency"]


class Emulator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        binary = Path(sys.executable).parent / "gemini-batch-emulator"
        self.proc = subprocess.Popen(
            # On Flex, the latency is Flex's own (--flex-latency), on top of none.
            [str(binary), "--port", str(self.port), "--latency", str(0.0 if spec.get("tier") else spec["latency"]),
             *spec["emulator"]],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                probe = urllib.request.Request(f"{self.url}/v1beta/models", headers={"x-goog-api-key": "b"})
                urllib.request.urlopen(probe)
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("the emulator did not start")

    def cpu_s(self) -> float:
        """CPU seconds the emulator process has used (user + system), from /proc."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def client(self) -> genai.Client:
        options = types.HttpOptions(base_url=self.url, retry_options=types.HttpRetryOptions(attempts=1))
        return genai.Client(api_key=f"bench-{time.monotonic_ns()}", http_options=options)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def requests(rows: int) -> list[tuple[str, dict[str, Any]]]:
    records = [{"t": f"Row {i} of the benchmark. It asks about topic {i % 17}."} for i in range(rows)]
    return list(build_requests(records, RequestSpec(prompt_template="{t}")))


async def cookbook_call(client: genai.Client, request: dict[str, Any], counts: dict[str, int],
                        tier: str | None = None) -> bool:
    """One call with the cookbook's retry: 3 retries after 2**attempt s on 429/5xx; False if lost."""
    config = types.GenerateContentConfig(service_tier=tier) if tier else None
    for attempt in range(4):
        try:
            await client.aio.models.generate_content(model=MODEL, contents=request["contents"], config=config)
            return True
        except errors.APIError as exc:
            counts["429"] += exc.code == 429
            if exc.code not in (429, 500, 503) or attempt == 3:
                return False
        except Exception:
            if attempt == 3:
                return False
        await asyncio.sleep(2**attempt)
    return False


async def sequential(client: genai.Client, reqs: list[tuple[str, dict[str, Any]]],
                     tier: str | None = None) -> dict[str, int]:
    counts = {"429": 0, "lost": 0}
    for _, request in reqs:
        counts["lost"] += not await cookbook_call(client, request, counts, tier)
    return counts


async def semaphore_gather(client: genai.Client, reqs: list[tuple[str, dict[str, Any]]], n: int,
                           tier: str | None = None) -> dict[str, int]:
    counts = {"429": 0, "lost": 0}
    semaphore = asyncio.Semaphore(n)

    async def one(request: dict[str, Any]) -> bool:
        async with semaphore:
            return await cookbook_call(client, request, counts, tier)

    results = await asyncio.gather(*(one(r) for _, r in reqs))
    counts["lost"] = results.count(False)
    return counts


def figures(rows: int, bound_s: float, wall_s: float, responses_429: int, lost: int, **extra: Any) -> dict[str, Any]:
    return {"rows": rows, "bound_s": round(bound_s, 3), "wall_s": round(wall_s, 3),
            "efficiency": round(bound_s / wall_s, 3), "responses_429": responses_429, "rows_lost": lost, **extra}


def costs(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the landed rows cost at the tier that served each (``cost_usd``), what the same tokens
    cost at Standard's price (``standard_cost_usd``), and the rows by tier."""
    price = price_of(MODEL)
    paid = [row["usage"] for row in rows if row.get("usage")]
    tiers: dict[str, int] = {}
    for usage in paid:
        tiers[usage.get("service_tier")] = tiers.get(usage.get("service_tier"), 0) + 1
    return {"cost_usd": round(sum(cost_usd(usage, price, batch=False) for usage in paid), 6),
            "standard_cost_usd": round(sum(cost_usd({**usage, "service_tier": "standard"}, price, batch=False)
                                           for usage in paid), 6),
            "rows_by_service_tier": tiers}


def run(name: str, fault_latency: float) -> dict[str, Any]:
    spec = dict(SCENARIOS[name])
    if fault_latency:
        spec["emulator"] = [*spec["emulator"], "--fault-latency", str(fault_latency)]
    rows, bound_s, reqs = spec["rows"], bound(spec), requests(spec["rows"])
    emulator = Emulator(spec)
    try:
        settings = OnlineSettings(concurrency=spec["concurrency"], rpm=spec.get("rpm"), progress_interval_s=3600,
                                  service_tier=spec.get("tier", "standard"))
        engine = OnlineEngine(emulator.client(), MODEL, settings)
        landed: list[dict[str, Any]] = []
        started, cpu, emulator_cpu = time.monotonic(), time.process_time(), emulator.cpu_s()
        stats = asyncio.run(engine.run(reqs, landed.append, total=rows))
        wall = time.monotonic() - started
        lost = rows - len({row["key"] for row in landed if row["status"] == "succeeded"})
        # Both processes share this machine's cores: their CPU time shows how near the bound can be.
        cpu_figures = {"client_cpu_s": round(time.process_time() - cpu, 2),
                       "emulator_cpu_s": round(emulator.cpu_s() - emulator_cpu, 2)}
        result = {"scenario": name, **figures(rows, bound_s, wall, stats.responses_429, lost, **cpu_figures),
                  **costs(landed)}

        started = time.monotonic()
        counts = asyncio.run(semaphore_gather(emulator.client(), reqs, spec["concurrency"], spec.get("tier")))
        gather = figures(rows, bound_s, time.monotonic() - started, counts["429"], counts["lost"])

        sample = reqs[:SEQUENTIAL_SAMPLE]
        started = time.monotonic()
        counts = asyncio.run(sequential(emulator.client(), sample, spec.get("tier")))
        scaled = (time.monotonic() - started) * rows / len(sample)
        seq = figures(rows, bound_s, scaled, counts["429"], counts["lost"], sampled_rows=len(sample))
        result["baselines"] = {"sequential": seq, "semaphore_gather": gather}
        return result
    finally:
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--fault-latency", type=float, default=0.0,
                        help="seconds the emulator takes before answering a fault (default: at once)")
    args = parser.parse_args()
    for name in args.scenario or list(SCENARIOS):
        print(json.dumps(run(name, args.fault_latency)), flush=True)


if __name__ == "__main__":
    main()
