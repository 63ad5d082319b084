"""GeminiBatchJobTrigger: waits in the triggerer until every given batch job has ended.

It only waits: it never creates jobs (duplicates of a trigger may run at once) and cancels them
only when a user kills the deferred task that created them (``cancel_on_kill``; Airflow calls
``on_kill`` then, never on a triggerer restart), carries the connection id (never the key) in its
kwargs, uses the SDK's async client only, and
rides out transient poll errors (HTTP 408/429/5xx and connection failures) up to
``max_poll_errors`` in a row; any other error ends it at once. Polls start ``poll_interval`` apart
and back off by half each time up to ``max_poll_interval``, each wait a random quarter longer or
shorter so that many triggers spread their polls. While jobs run it logs their progress from
``batchStats``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from google import genai
from google.genai import types

from gemini_batch_provider.core.states import ENDED_BADLY, TERMINAL, job_summary, state_name
from gemini_batch_provider.core.transient import is_retryable
from gemini_batch_provider.hooks.gemini import GeminiHook

# No poll may hang the wait: an unanswered one is a transient error after this long.
POLL_OPTIONS = types.HttpOptions(timeout=60_000)  # milliseconds


def finish_event(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """The event payload for jobs that have all ended (``job_summary`` dicts, in order)."""
    bad = [f"{j['name']} {j['state']}" for j in jobs if j["state"] in ENDED_BADLY]
    return {
        "status": "ended",
        "jobs": jobs,
        "message": f"batch jobs did not succeed: {', '.join(bad)}" if bad else "all batch jobs succeeded",
    }


def deadline_event(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """The event payload when the deadline passed with some jobs unfinished (their last states)."""
    unfinished = sum(job["state"] not in TERMINAL for job in jobs)
    return {"status": "deadline", "jobs": jobs, "message": f"{unfinished} batch jobs unfinished at the deadline"}


async def batch_stats(client: genai.Client, name: str) -> dict[str, int]:
    """A job's ``batchStats`` (requestCount, successfulRequestCount, failedRequestCount,
    pendingRequestCount; https://ai.google.dev/api/batch-mode#BatchStats) as ints, read from the raw
    response through the SDK's own transport: the SDK drops them in Developer API mode. A Vertex AI
    job's ``completionStats`` are given in the same terms."""
    response = await client.aio._api_client.async_request("get", name, {}, POLL_OPTIONS)
    operation = json.loads(response.body or "{}")
    stats = (operation.get("metadata") or {}).get("batchStats")
    if stats is None and "completionStats" in operation:  # Vertex AI's BatchPredictionJob
        done = {name: int(operation["completionStats"].get(name, 0)) for name in
                ("successfulCount", "failedCount", "incompleteCount")}
        return {"requestCount": sum(done.values()), "successfulRequestCount": done["successfulCount"],
                "failedRequestCount": done["failedCount"], "pendingRequestCount": done["incompleteCount"]}
    return {field: int(value) for field, value in (stats or {}).items()}


def progress_line(name: str, stats: dict[str, int]) -> str:
    total = stats.get("requestCount", 0)
    done = stats.get("successfulRequestCount", 0) + stats.get("failedRequestCount", 0)
    percent = 100.0 * done / total if total else 0.0
    return (f"{name}: {done}/{total} requests done ({percent:.1f}%), {stats.get('failedRequestCount', 0)} failed, "
            f"{stats.get('pendingRequestCount', total - done)} pending")


class GeminiBatchJobTrigger(BaseTrigger):
    """Poll batch jobs until all have ended; yield one event.

    Event payload: ``{"status": "ended" | "deadline" | "error", "message": str, "jobs": [job_summary]}``:
    ``ended`` when every job is in a terminal state (whichever), ``deadline`` when ``deadline``
    passed first (the jobs' last states), ``error`` when polling failed.

    :param job_names: batch job names, ``batches/<id>``.
    :param gemini_conn_id: connection to poll with.
    :param poll_interval: seconds before the second poll; each next wait is 1.5 times longer.
    :param max_poll_interval: longest wait between polls, seconds.
    :param max_poll_errors: transient poll errors tolerated in a row before giving up.
    :param deadline: Unix time (seconds) after which it stops waiting and yields ``deadline``;
        what to do with unfinished jobs is the task's call.
    :param cancel_on_kill: cancel the unfinished jobs when a user kills the deferred task (mark
        failed, clear, mark succeeded): for the task that created them, never for a sensor.
    """

    def __init__(self, job_names: list[str], gemini_conn_id: str, poll_interval: float = 30.0,
                 max_poll_interval: float = 300.0, max_poll_errors: int = 10, deadline: float | None = None,
                 cancel_on_kill: bool = False) -> None:
        super().__init__()
        self.cancel_on_kill = cancel_on_kill
        self.job_names = list(job_names)
        self.gemini_conn_id = gemini_conn_id
        self.poll_interval = poll_interval
        self.max_poll_interval = max(poll_interval, max_poll_interval)
        self.max_poll_errors = max_poll_errors
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_names": self.job_names,
                "gemini_conn_id": self.gemini_conn_id,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "max_poll_errors": self.max_poll_errors,
                "deadline": self.deadline,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    async def on_kill(self) -> None:
        """The user killed the deferred task: cancel its unfinished jobs (``cancel_on_kill`` only)."""
        if not self.cancel_on_kill:
            return
        client = await GeminiHook(self.gemini_conn_id).aget_client()
        for name in self.job_names:
            job = await client.aio.batches.get(name=name, config={"http_options": POLL_OPTIONS})
            if state_name(job.state) not in TERMINAL:
                self.log.warning("Task killed: cancelling %s.", name)
                await client.aio.batches.cancel(name=name, config={"http_options": POLL_OPTIONS})

    async def _poll(self, client: genai.Client, latest: dict[str, dict[str, Any]]) -> None:
        for name in self.job_names:
            if latest[name]["state"] in TERMINAL:
                continue
            latest[name] = job_summary(await client.aio.batches.get(name=name, config={"http_options": POLL_OPTIONS}))
            if latest[name]["state"] in TERMINAL:
                self.log.info("%s ended: %s", name, latest[name]["state"])
                continue
            try:
                self.log.info(progress_line(name, await batch_stats(client, name)))
            except Exception as exc:  # progress is a courtesy: it never ends the wait
                self.log.info("%s: %s (no progress figures: %s)", name, latest[name]["state"], type(exc).__name__)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        client = await GeminiHook(self.gemini_conn_id).aget_client()
        # Triggers started together (a triggerer restart resumes them all at once) poll apart:
        # a random start within a quarter interval, and every wait a quarter longer or shorter.
        await asyncio.sleep(random.uniform(0, self.poll_interval / 4))
        # The last job_summary seen of each job; a job not polled yet has no state.
        latest: dict[str, dict[str, Any]] = {name: {"name": name, "state": None, "output_file": None}
                                             for name in self.job_names}
        errors_in_row = 0
        interval = self.poll_interval
        while True:
            try:
                await self._poll(client, latest)
                errors_in_row = 0
            except Exception as exc:
                errors_in_row += 1
                if not is_retryable(exc) or errors_in_row > self.max_poll_errors:
                    yield TriggerEvent(
                        {"status": "error", "jobs": list(latest.values()),
                         "message": f"polling batch jobs failed ({errors_in_row} errors in a row): {exc}"}
                    )
                    return
                self.log.warning("poll error %d of %d tolerated: %s", errors_in_row, self.max_poll_errors, exc)
            if all(job["state"] in TERMINAL for job in latest.values()):
                yield TriggerEvent(finish_event(list(latest.values())))
                return
            wait = interval * random.uniform(0.75, 1.25)
            if self.deadline is not None:
                left = self.deadline - time.time()
                if left <= 0:
                    yield TriggerEvent(deadline_event(list(latest.values())))
                    return
                wait = min(wait, left)
            await asyncio.sleep(wait)
            interval = min(self.max_poll_interval, interval * 1.5)
