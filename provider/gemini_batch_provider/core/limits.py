"""The sizes the stages check against (the API's, and the per-job limits a plan sets), in a module
of their own so that the plan, checked when a DAG file is parsed, reads them without loading the
stages that use them (media, shards)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

FILE_LIMIT_BYTES = 2_000_000_000  # the Files API's limit per file (https://ai.google.dev/gemini-api/docs/files)
INLINE_MAX_BYTES = 1_000_000  # larger media are uploaded once and referenced, not repeated in every request
MEDIA_TOKENS = 258  # an image of up to 384x384 pixels (https://ai.google.dev/gemini-api/docs/tokens)
DEFAULT_MAX_BYTES = 1_000_000_000  # half the Files API's 2 GB per file


@dataclass(frozen=True)
class ShardLimits:
    """Limits of one batch job's input.

    :param max_requests: requests per job at most (None: no limit).
    :param max_bytes: bytes of JSONL per input file at most; default 1 GB (the limit is 2 GB).
    :param max_tokens: estimated tokens per job at most (None: no limit); set it under your tier's
        batch enqueued-token limit for the model.
    :raises InputError: (a ValueError) for a limit that is not a positive whole number, or ``max_bytes`` over 2 GB.
    """

    max_requests: int | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_requests", "max_bytes", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise InputError(f"{name} must be a positive whole number, got {value!r}")
        if self.max_bytes > FILE_LIMIT_BYTES:
            raise InputError(f"max_bytes must be at most {FILE_LIMIT_BYTES} (the Files API takes 2 GB a file), "
                             f"got {self.max_bytes}")


@dataclass(frozen=True)
class BatchQuota:
    """The project's batch limits, as AI Studio shows them (https://ai.google.dev/gemini-api/docs/rate-limits#batch-mode):
    the estimated tokens of a model's unfinished batch jobs ("enqueued tokens"), and the batch jobs
    unfinished at once. A night past them is submitted in waves (``core.submit``).

    :param max_enqueued_tokens: estimated tokens of this task's unfinished jobs at most (None: no limit).
    :param max_concurrent_jobs: this task's unfinished jobs at most (None: no limit).
    :raises InputError: (a ValueError) for a limit that is not a positive whole number.
    """

    max_enqueued_tokens: int | None = None
    max_concurrent_jobs: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_enqueued_tokens", "max_concurrent_jobs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise InputError(f"{name} must be a positive whole number, got {value!r}")

    def has_room(self, running_tokens: int, running_jobs: int, tokens: int) -> bool:
        """Whether a job of ``tokens`` fits beside ``running_jobs`` unfinished jobs of ``running_tokens``.
        The first job always fits: a shard is cut to fit the limit (``ShardLimits.max_tokens``)."""
        if running_jobs == 0:
            return True
        if self.max_concurrent_jobs is not None and running_jobs + 1 > self.max_concurrent_jobs:
            return False
        return self.max_enqueued_tokens is None or running_tokens + tokens <= self.max_enqueued_tokens
