"""Batch job states as the SDK reports them (``JOB_STATE_*``; the Gemini API's ``BATCH_STATE_*`` are
rewritten by the SDK), per https://ai.google.dev/api/batch-mode#BatchState, and Vertex AI's
``JOB_STATE_PARTIALLY_SUCCEEDED`` (some rows failed; the SDK does not count it as done), per
https://cloud.google.com/vertex-ai/docs/reference/rest/v1/JobState."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SUCCEEDED = "JOB_STATE_SUCCEEDED"
ENDED_BADLY = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})
PARTIALLY_SUCCEEDED = "JOB_STATE_PARTIALLY_SUCCEEDED"
TERMINAL = ENDED_BADLY | {SUCCEEDED, PARTIALLY_SUCCEEDED}


def as_job_names(names: str | Iterable[str]) -> list[str]:
    """One job name or several (as a templated XCom may give them), as a list."""
    return [names] if isinstance(names, str) else list(names)


def state_name(state: object) -> str:
    """``JobState.JOB_STATE_X`` or a raw string, as ``"JOB_STATE_X"``."""
    return str(getattr(state, "value", state))


def job_summary(job: Any) -> dict[str, Any]:
    """What the task needs of a ``types.BatchJob``: ``{"name", "state", "output_file"}``; the output
    file is ``files/batch-<id>`` (Gemini API) or ``gs://.../predictions.jsonl`` (Vertex AI), None
    while the job has none."""
    output = None
    if job.dest is not None and job.dest.file_name:
        output = job.dest.file_name
    elif job.output_info is not None and job.output_info.gcs_output_directory:
        output = f"{job.output_info.gcs_output_directory.rstrip('/')}/predictions.jsonl"
    return {"name": job.name, "state": state_name(job.state), "output_file": output}
