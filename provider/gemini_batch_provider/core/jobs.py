"""A batch job's status as one poll gives it (state, output file and progress together), and the
one event a wait ends with, which the trigger and the in-worker wait hand to ``execute_complete``.

Each backend reads a status from the resource its API answers a ``GET`` with (``backends``). Plain
data, no SDK: the trigger's engine uses it on the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import WaitEventError
from .vocabulary import TERMINAL, WaitStatus, job_summary


@dataclass(frozen=True)
class JobStatus:
    """One poll's answer. Counts are requests (rows): all of them, answered, failed, not yet done."""

    name: str
    state: str
    output_file: str | None = None
    display_name: str | None = None
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    pending: int = 0

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def summary(self) -> dict[str, Any]:
        return job_summary(self.name, self.state, self.output_file)

    @property
    def percent(self) -> float:
        """Requests answered (succeeded or failed) out of all, in percent; 0 before the counts come."""
        return 100.0 * (self.succeeded + self.failed) / self.requests if self.requests else 0.0

    def progress_line(self) -> str:
        """What a wait logs of this poll: the job's progress, or how it ended."""
        done = self.succeeded + self.failed
        if self.terminal:
            return f"{self.name} ended: {self.state} ({done}/{self.requests} requests done, {self.failed} failed)"
        return (f"{self.name}: {self.state}, {done}/{self.requests} requests done ({self.percent:.1f}%), "
                f"{self.failed} failed, {self.pending} pending")


@dataclass(frozen=True)
class WaitEvent:
    """The one event a wait ends with; ``jobs`` in the order waited on (``name``, ``state`` and
    ``output_file`` of each: what an event carries)."""

    status: WaitStatus
    message: str
    jobs: tuple[JobStatus, ...]

    @property
    def past_deadline(self) -> bool:
        return self.status is WaitStatus.DEADLINE

    def payload(self) -> dict[str, Any]:
        """The event as JSON-ready data (a ``TriggerEvent``'s payload)."""
        return {"status": self.status.value, "message": self.message, "jobs": [job.summary() for job in self.jobs]}


def validate_event(event: Any, job_names: Iterable[str] | None = None) -> WaitEvent:
    """The ``WaitEvent`` in an ``execute_complete`` event payload.

    :raises WaitEventError: (a ValueError) the payload is not ``{"status", "message", "jobs"}``
        with a known status and a ``{"name", "state", "output_file"}`` per job, or (given
        ``job_names``) names other jobs than those waited on; the message quotes what came.
    """
    if not isinstance(event, dict) or not {"status", "message", "jobs"} <= event.keys():
        raise WaitEventError(f"a wait event must be a dict with status, message and jobs; got {event!r:.300}")
    try:
        status = WaitStatus(event["status"])
    except ValueError:
        raise WaitEventError(f"unknown wait event status {event['status']!r}; expected one of "
                             f"{[s.value for s in WaitStatus]}") from None
    jobs = event["jobs"]
    if not isinstance(jobs, list) or not all(isinstance(j, dict) and {"name", "state", "output_file"} <= j.keys()
                                             for j in jobs):
        raise WaitEventError(f"a wait event's jobs must be {{name, state, output_file}} dicts; got {jobs!r:.300}")
    if job_names is not None and [j["name"] for j in jobs] != list(job_names):
        raise WaitEventError(f"the wait event is about jobs {[j['name'] for j in jobs]}, not the task's "
                             f"{list(job_names)}")
    return WaitEvent(status, str(event["message"]),
                     tuple(JobStatus(str(j["name"]), str(j["state"]), j["output_file"]) for j in jobs))
