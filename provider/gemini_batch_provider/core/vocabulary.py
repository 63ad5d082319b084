"""The project's words, each defined once: batch job states, result-row statuses, the path that
produced a row, and the shape of a batch job's name.

Every value is the string that appears on the wire, in XCom, in results files and in trigger
events, so a member and its string compare (and hash) equal: ``JobState.SUCCEEDED ==
"JOB_STATE_SUCCEEDED"``. The module imports nothing heavy, so a trigger's module can use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from .errors import InputError


class JobState(StrEnum):
    """A batch job's state as the SDK names it. The Gemini API's ``BATCH_STATE_X``
    (https://ai.google.dev/api/batch-mode#BatchState) is ``JOB_STATE_X`` here, as the SDK rewrites
    it; Vertex AI's states (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/JobState) are
    already ``JOB_STATE_*``, ``PARTIALLY_SUCCEEDED`` among them."""

    UNSPECIFIED = "JOB_STATE_UNSPECIFIED"
    QUEUED = "JOB_STATE_QUEUED"
    PENDING = "JOB_STATE_PENDING"
    RUNNING = "JOB_STATE_RUNNING"
    SUCCEEDED = "JOB_STATE_SUCCEEDED"
    PARTIALLY_SUCCEEDED = "JOB_STATE_PARTIALLY_SUCCEEDED"
    FAILED = "JOB_STATE_FAILED"
    CANCELLING = "JOB_STATE_CANCELLING"
    CANCELLED = "JOB_STATE_CANCELLED"
    EXPIRED = "JOB_STATE_EXPIRED"
    PAUSED = "JOB_STATE_PAUSED"
    UPDATING = "JOB_STATE_UPDATING"


#: States a job never leaves. A state this module does not know counts as unfinished.
TERMINAL = frozenset({JobState.SUCCEEDED, JobState.PARTIALLY_SUCCEEDED, JobState.FAILED, JobState.CANCELLED,
                      JobState.EXPIRED})
#: Terminal states whose job answered (PARTIALLY_SUCCEEDED: some rows failed, the rest answered).
ANSWERED = frozenset({JobState.SUCCEEDED, JobState.PARTIALLY_SUCCEEDED})
#: Terminal states that fail the task once what the job produced has landed.
ENDED_BADLY = TERMINAL - ANSWERED


def state_name(state: object) -> str:
    """A state as ``"JOB_STATE_X"``: the SDK's ``JobState`` enum, a wire string (``BATCH_STATE_X``
    rewritten as the SDK does) or None (not known yet, ``JOB_STATE_UNSPECIFIED``)."""
    text = str(getattr(state, "value", state) or JobState.UNSPECIFIED)
    return text.replace("BATCH_STATE_", "JOB_STATE_", 1) if text.startswith("BATCH_STATE_") else text


class RowStatus(StrEnum):
    """A results row's ``status`` (see ``core.results``)."""

    SUCCEEDED = "succeeded"  # the model answered with text (or an embedding)
    FAILED = "failed"  # the API answered this row with an error, or with no text (blocked, empty)
    INVALID_OUTPUT = "invalid_output"  # the answer does not match the response_schema
    MISSING = "missing"  # the output has no line for this key (its job failed, or the line is lost)
    EXPIRED = "expired"  # its job expired before answering it
    CANCELLED = "cancelled"  # its job was cancelled before answering it


class RowPath(StrEnum):
    """What produced a row (its ``path``), and, in a summary, what produced the run's rows."""

    BATCH = "batch"
    ONLINE = "online"
    FLEX = "flex"  # online, on the Flex service tier (the batch price)
    REUSED = "reused"  # answered by an earlier run (core.answers); nothing sent, nothing billed
    REFUSED = "refused"  # bad input, landed failed under on_bad_row="land" (core.answers); nothing sent
    BATCH_AND_ONLINE = "batch+online"  # a summary only: some rows went online after the batch


class WaitStatus(StrEnum):
    """How a wait for batch jobs ended."""

    ENDED = "ended"  # every job is in a terminal state, whichever
    DEADLINE = "deadline"  # the deadline passed first; the jobs' last states are given
    ERROR = "error"  # polling failed: a permanent error, or too many transient ones in a row
    ROOM = "room"  # a wave's wait: a job ended, or the time to try the quota again came; shards wait


def job_summary(name: str, state: object, output_file: str | None) -> dict[str, Any]:
    """A job as events and XCom carry it: ``{"name", "state", "output_file"}``."""
    return {"name": name, "state": state_name(state), "output_file": output_file}


#: The shapes a batch job's name has: a Gemini API batch, ``batches/<id>``
#: (https://ai.google.dev/api/batch-mode#GenerateContentBatch), or a Vertex AI batch prediction job,
#: ``projects/<project>/locations/<location>/batchPredictionJobs/<id>``
#: (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs).
JOB_NAME = re.compile(r"batches/[A-Za-z0-9_-]{1,128}|projects/[a-z0-9-]{1,64}/locations/[a-z0-9-]{1,64}/"
                      r"batchPredictionJobs/[0-9A-Za-z_-]{1,128}")


def is_job_name(name: object) -> bool:
    """Whether ``name`` has the shape of a batch job's name (``JOB_NAME``): anything else is never
    sent to the API, whoever wrote it (a ledger, an XCom)."""
    return isinstance(name, str) and JOB_NAME.fullmatch(name) is not None


def job_name(name: str) -> str:
    """``name``, once it has a batch job's shape (``JOB_NAME``): a name read back from XCom, a
    ledger or a template is never sent to the API as a path of another resource.

    :raises InputError: naming the value and the shapes a job name has."""
    if not is_job_name(name):
        raise InputError(f"{name!r} is not a batch job's name: give 'batches/<id>' (Gemini API) or "
                         "'projects/<project>/locations/<location>/batchPredictionJobs/<id>' (Vertex AI)")
    return name


def as_job_names(names: str | Iterable[str]) -> list[str]:
    """One job name or several (as a templated XCom may give them), as a list."""
    return [names] if isinstance(names, str) else list(names)
