"""Batch job states as the SDK reports them (``JOB_STATE_*``; the wire's ``BATCH_STATE_*`` are
rewritten by the SDK), per https://ai.google.dev/api/batch-mode#BatchState."""

from __future__ import annotations

from typing import Any

SUCCEEDED = "JOB_STATE_SUCCEEDED"
ENDED_BADLY = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})
TERMINAL = ENDED_BADLY | {SUCCEEDED}


def state_name(state: object) -> str:
    """``JobState.JOB_STATE_X`` or a raw string, as ``"JOB_STATE_X"``."""
    return str(getattr(state, "value", state))


def job_summary(job: Any) -> dict[str, Any]:
    """What the task needs of an ended ``types.BatchJob``: ``{"name", "state", "output_file"}``
    (``files/batch-<id>``, None where the job has no output file)."""
    return {"name": job.name, "state": state_name(job.state), "output_file": job.dest.file_name if job.dest else None}
