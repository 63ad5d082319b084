"""GeminiBatchJobTrigger: waits in the triggerer until every given batch job has ended.

It only waits: it never creates or cancels jobs, carries the connection id (never the key) in its
kwargs, uses the SDK's async client only, and rides out transient poll errors (HTTP 408/429/5xx and
connection failures) up to ``max_poll_errors`` in a row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from gemini_batch_provider.core.states import ENDED_BADLY, TERMINAL, job_summary
from gemini_batch_provider.core.transient import is_retryable
from gemini_batch_provider.hooks.gemini import GeminiHook


def finish_event(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """The event payload for jobs that have all ended (``job_summary`` dicts, in order)."""
    bad = [f"{j['name']} {j['state']}" for j in jobs if j["state"] in ENDED_BADLY]
    return {
        "status": "error" if bad else "success",
        "jobs": jobs,
        "message": f"batch jobs did not succeed: {', '.join(bad)}" if bad else "all batch jobs succeeded",
    }


def deadline_event(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """The event payload when the deadline passed with some jobs unfinished (their last states)."""
    unfinished = sum(job["state"] not in TERMINAL for job in jobs)
    return {"status": "deadline", "jobs": jobs, "message": f"{unfinished} batch jobs unfinished at the deadline"}


class GeminiBatchJobTrigger(BaseTrigger):
    """Poll batch jobs until all have ended; yield one event.

    Event payload: ``{"status": "success" | "error", "message": str, "jobs": [job_summary(job)]}``;
    ``status`` is ``success`` only when every job is ``JOB_STATE_SUCCEEDED``.

    :param job_names: batch job names, ``batches/<id>``.
    :param gemini_conn_id: connection to poll with.
    :param poll_interval: seconds between polls.
    :param max_poll_errors: transient poll errors tolerated in a row before giving up.
    :param deadline: Unix time (seconds) after which it stops waiting and yields ``status``
        ``deadline`` with the jobs' last states; what to do with unfinished jobs is the task's call.
    """

    def __init__(self, job_names: list[str], gemini_conn_id: str, poll_interval: float = 30.0,
                 max_poll_errors: int = 10, deadline: float | None = None) -> None:
        super().__init__()
        self.job_names = list(job_names)
        self.gemini_conn_id = gemini_conn_id
        self.poll_interval = poll_interval
        self.max_poll_errors = max_poll_errors
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_names": self.job_names,
                "gemini_conn_id": self.gemini_conn_id,
                "poll_interval": self.poll_interval,
                "max_poll_errors": self.max_poll_errors,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        client = await GeminiHook(self.gemini_conn_id).aget_client()
        # The last job_summary seen of each job; a job not polled yet has no state.
        latest = {name: {"name": name, "state": None, "output_file": None} for name in self.job_names}
        errors_in_row = 0
        started = time.monotonic()
        while True:
            try:
                for name in self.job_names:
                    if latest[name]["state"] in TERMINAL:
                        continue
                    latest[name] = job_summary(await client.aio.batches.get(name=name))
                    if latest[name]["state"] in TERMINAL:
                        self.log.info("%s ended: %s", name, latest[name]["state"])
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
            unfinished = sum(job["state"] not in TERMINAL for job in latest.values())
            if not unfinished:
                yield TriggerEvent(finish_event(list(latest.values())))
                return
            if self.deadline is not None and time.time() >= self.deadline:
                yield TriggerEvent(deadline_event(list(latest.values())))
                return
            self.log.info(
                "%d of %d batch jobs ended after %.0f s; next poll in %.0f s",
                len(latest) - unfinished, len(latest), time.monotonic() - started, self.poll_interval,
            )
            await asyncio.sleep(self.poll_interval)
