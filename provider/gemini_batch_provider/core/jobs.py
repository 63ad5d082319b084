"""A batch job's status as one poll gives it: state, output file and progress together.

Read from the resource the API answers a ``GET`` with, in either API's wire shape, so that a poll
of a running job is one request. The SDK's ``batches.get`` would need a second one: it drops the
Gemini API's ``batchStats``. Plain data, no SDK: the trigger's engine uses it on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .vocabulary import TERMINAL, job_summary, state_name


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


def _count(fields: dict[str, Any], name: str) -> int:
    return int(fields.get(name) or 0)  # int64 fields come as strings


def gemini_job_status(name: str, operation: dict[str, Any]) -> JobStatus:
    """Job ``name`` (as polled) from its long-running Operation (``batches.get``): ``metadata`` holds the
    ``GenerateContentBatch`` or ``EmbedContentBatch``, with ``state``, ``batchStats`` and
    ``output.responsesFile`` (https://ai.google.dev/api/batch-mode#GenerateContentBatch)."""
    batch = operation.get("metadata") or {}
    stats = batch.get("batchStats") or {}
    return JobStatus(
        name=name,
        state=state_name(batch.get("state")),
        output_file=(batch.get("output") or {}).get("responsesFile"),
        display_name=batch.get("displayName"),
        requests=_count(stats, "requestCount"),
        succeeded=_count(stats, "successfulRequestCount"),
        failed=_count(stats, "failedRequestCount"),
        pending=_count(stats, "pendingRequestCount"),
    )


def vertex_job_status(name: str, job: dict[str, Any]) -> JobStatus:
    """Job ``name`` (as polled; the service may answer with the project number instead of its id)
    from a Vertex AI ``BatchPredictionJob``: ``state``, ``completionStats`` and ``outputInfo``, whose
    ``gcsOutputDirectory`` holds ``predictions.jsonl``
    (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs)."""
    stats = job.get("completionStats") or {}
    directory = (job.get("outputInfo") or {}).get("gcsOutputDirectory")
    succeeded, failed = _count(stats, "successfulCount"), _count(stats, "failedCount")
    pending = _count(stats, "incompleteCount")
    return JobStatus(
        name=name,
        state=state_name(job.get("state")),
        output_file=f"{directory.rstrip('/')}/predictions.jsonl" if directory else None,
        display_name=job.get("displayName"),
        requests=succeeded + failed + pending,
        succeeded=succeeded,
        failed=failed,
        pending=pending,
    )
