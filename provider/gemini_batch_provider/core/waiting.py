"""The one waiting engine: poll batch jobs until all have ended, the deadline passes or polling fails.

The trigger (in the triggerer), the operator's in-worker wait (``deferrable=False``) and the
sensor's trigger all wait through ``wait_for_jobs``, and every cancel goes through
``cancel_unfinished``, so the rules live here once:

- polls start ``poll_interval`` apart and back off by half each time up to ``max_poll_interval``,
  each wait a random quarter longer or shorter, after a random start within a quarter interval:
  triggers resumed together (a triggerer restart) spread their polls;
- transient errors (``core.transient``: HTTP 408/429/5xx, timeouts, dropped connections) are
  ridden out up to ``max_poll_errors`` in a row; any other error ends the wait at once;
- a job that has ended is not polled again;
- a wave's wait (``WaitPolicy.wave``: shards wait for room in the batch quota) ends ``room`` as soon
  as one job has ended or ``wake_at`` has come, and its polls wait no longer than that.

Polls and cancels go through a ``core.backend.JobWatch`` (a backend, on an event loop; or
``InWorker(backend)``, its blocking calls in worker threads), so this module holds no client and
no Airflow.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .backend import BatchBackend, JobWatch
from .jobs import JobStatus, WaitEvent
from .plan import WaitPolicy
from .transient import is_retryable
from .vocabulary import ENDED_BADLY, JobState, WaitStatus


@dataclass(frozen=True)
class Polled:
    """One job polled; ``status.terminal`` when this poll saw it end."""

    status: JobStatus


@dataclass(frozen=True)
class PollFailed:
    """A transient poll error tolerated (``errors_in_row`` of at most ``max_poll_errors``)."""

    errors_in_row: int
    max_poll_errors: int
    error: str


def ended_event(jobs: Sequence[JobStatus]) -> WaitEvent:
    bad = [f"{job.name} {job.state}" for job in jobs if job.state in ENDED_BADLY]
    message = f"batch jobs did not succeed: {', '.join(bad)}" if bad else "all batch jobs succeeded"
    return WaitEvent(WaitStatus.ENDED, message, tuple(jobs))


def deadline_event(jobs: Sequence[JobStatus]) -> WaitEvent:
    unfinished = sum(not job.terminal for job in jobs)
    return WaitEvent(WaitStatus.DEADLINE, f"{unfinished} batch jobs unfinished at the deadline",
                     tuple(jobs))


async def wait_for_jobs(names: Sequence[str], jobs: JobWatch, policy: WaitPolicy, *,
                        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncIterator[
        Polled | PollFailed | WaitEvent]:
    """Yield a ``Polled`` per job poll and a ``PollFailed`` per tolerated error, then one ``WaitEvent``
    (``ended``, ``deadline`` or ``error``) and stop. ``sleep`` waits between polls (seconds)."""
    latest = {name: JobStatus(name, JobState.UNSPECIFIED) for name in names}
    errors_in_row, interval = 0, policy.poll_interval
    await sleep(random.uniform(0, policy.poll_interval / 4))
    while True:
        try:
            for name in names:
                if not latest[name].terminal:
                    latest[name] = await jobs.ajob_status(name)
                    yield Polled(latest[name])
            errors_in_row = 0
        except Exception as exc:
            errors_in_row += 1
            if not is_retryable(exc) or errors_in_row > policy.max_poll_errors:
                yield WaitEvent(WaitStatus.ERROR, f"polling batch jobs failed ({errors_in_row} errors in a row): "
                                f"{type(exc).__name__}: {exc}", tuple(latest.values()))
                return
            yield PollFailed(errors_in_row, policy.max_poll_errors, f"{type(exc).__name__}: {exc}")
        if policy.wave:
            if any(job.terminal for job in latest.values()) or _come(policy.wake_at):
                yield WaitEvent(WaitStatus.ROOM, "room may have freed in the batch quota", tuple(latest.values()))
                return
        elif all(job.terminal for job in latest.values()):
            yield ended_event(list(latest.values()))
            return
        wait = interval * random.uniform(0.75, 1.25)
        if policy.wave and policy.wake_at is not None:
            wait = min(wait, max(0.0, policy.wake_at - time.time()))
        if policy.deadline is not None:
            left = policy.deadline - time.time()
            if left <= 0:
                yield deadline_event(list(latest.values()))
                return
            wait = min(wait, left)
        await sleep(wait)
        interval = min(policy.max_poll_interval, interval * 1.5)


def _come(moment: float | None) -> bool:
    return moment is not None and time.time() >= moment


async def wait_logged(names: Sequence[str], jobs: JobWatch, policy: WaitPolicy, log: Any) -> WaitEvent:
    """``wait_for_jobs`` with each poll's progress and each tolerated error written to ``log`` (a
    logger); returns the final event. What the trigger and the in-worker wait both do."""
    steps = wait_for_jobs(names, jobs, policy)
    step = await anext(steps)
    while not isinstance(step, WaitEvent):  # the engine's last step is always its event
        if isinstance(step, Polled):
            log.info(step.status.progress_line())
        else:
            log.warning("poll error %d of %d tolerated: %s", step.errors_in_row, step.max_poll_errors, step.error)
        step = await anext(steps)
    return step


async def cancel_unfinished(names: Sequence[str], jobs: JobWatch, log: Any, why: str,
                            settle_seconds: float = 0.0) -> list[JobStatus]:
    """Cancel each job that has not ended, logging ``why`` (``"Task killed"``) with each; then, for
    up to ``settle_seconds``, poll once a second until all have ended (a cancel takes effect after
    a while). Returns the last statuses, in order."""
    statuses = [await jobs.ajob_status(name) for name in names]
    for status in statuses:
        if not status.terminal:
            log.warning("%s: cancelling %s.", why, status.name)
            await jobs.acancel(status.name)
    give_up = time.monotonic() + settle_seconds
    while settle_seconds and not all(s.terminal for s in statuses) and time.monotonic() < give_up:
        await asyncio.sleep(1.0)
        statuses = [s if s.terminal else await jobs.ajob_status(s.name) for s in statuses]
    return statuses


class InWorker:
    """A backend's blocking job calls as a ``JobWatch``, each run in a worker thread: how a task
    waits in the worker (``deferrable=False``) and cancels with this engine."""

    def __init__(self, backend: BatchBackend) -> None:
        self.backend = backend

    async def ajob_status(self, name: str) -> JobStatus:
        return await asyncio.to_thread(self.backend.job_status, name)

    async def acancel(self, name: str) -> None:
        await asyncio.to_thread(self.backend.cancel, name)
