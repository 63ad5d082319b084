"""The operators' own parameters beyond the shared ones, checked when the DAG is parsed: plain
frozen values, imported by the operator modules without the steps that use them (``flow``), so
that parsing a DAG file stays cheap."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow.sdk import XComArg

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.limits import BatchQuota, ShardLimits
from gemini_batch_provider.core.plan import ON_CHANGED_INPUT, OnlineSettings, Routing, WaitPolicy


class Records:
    """``records`` as a DAG file gives them: a template field (so that an upstream task's output can
    be given instead), whose rows Airflow's rendering leaves as they are: their strings are data,
    never Jinja. Shown as ``Records(<n> rows)`` in the rendered fields."""

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self.rows = tuple(rows)  # read more than once: checked, then sent

    def __repr__(self) -> str:
        return f"Records({len(self.rows)} rows)"


def records_param(records: Iterable[Mapping[str, Any]] | XComArg | None) -> Records | XComArg | None:
    """What an operator keeps of ``records``: an upstream task's output (an ``XComArg``) as it is,
    for Airflow to resolve when the task renders its template fields; rows as ``Records``."""
    return records if records is None or isinstance(records, XComArg) else Records(records)


def records_of(task_id: str, value: object) -> tuple[Mapping[str, Any], ...] | None:
    """The rows of an operator's ``records`` (``records_param``): given in the DAG file, or the
    upstream task's output once rendered; none yet (``()``) for an output not resolved yet (at parse).

    :raises InputError: the upstream task's output is not a list of dicts, naming the task."""
    if value is None or isinstance(value, Records):
        return value.rows if value is not None else None
    if isinstance(value, XComArg):
        return ()
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        rows = tuple(value)
        if all(isinstance(row, Mapping) for row in rows):
            return rows
    raise InputError(f"{task_id}: records must be a list of dicts, one per row; the upstream task gave "
                     f"{type(value).__name__}. Return a list of dicts from it, or write a file and pass input_path")


def batch_limits(task_id: str, max_requests_per_job: int | None, max_bytes_per_job: int,
                 max_tokens_per_job: int | None, quota: BatchQuota | None = None) -> ShardLimits:
    """The batch operators' per-job limits; a job's tokens at most the ``quota``'s enqueued tokens,
    else it could never be created. :raises InputError: (a ValueError) naming the task."""
    enqueued = quota.max_enqueued_tokens if quota is not None else None
    if enqueued is not None and (max_tokens_per_job is None or
                                 (isinstance(max_tokens_per_job, int) and max_tokens_per_job > enqueued)):
        max_tokens_per_job = enqueued
    try:
        return ShardLimits(max_requests_per_job, max_bytes_per_job, max_tokens_per_job)
    except InputError as exc:
        raise InputError(f"{task_id}: {exc} (the per-job limits)") from None


def batch_quota(task_id: str, max_enqueued_tokens: int | None, max_concurrent_jobs: int | None) -> BatchQuota:
    """The project's batch limits (``core.limits.BatchQuota``). :raises InputError: naming the task."""
    try:
        return BatchQuota(max_enqueued_tokens, max_concurrent_jobs)
    except InputError as exc:
        raise InputError(f"{task_id}: {exc} (the project's batch quota)") from None


def online_settings(task_id: str, **limits: object) -> OnlineSettings:
    """The online engine's limits (``core.plan.OnlineSettings``). :raises InputError: naming the task."""
    try:
        return OnlineSettings(**limits)  # type: ignore[arg-type]
    except InputError as exc:
        raise InputError(f"{task_id}: {exc}") from None


@dataclass(frozen=True)
class BatchParams:
    """What the all-in-one batch operators add to the shared parameters (see ``GeminiBatchOperator``),
    checked when the DAG is parsed. ``deadline_s`` is in ``routing``; intervals are seconds;
    ``quota`` the project's batch limits the jobs are created in waves under (``params.batch_quota``)."""

    routing: Routing
    online: OnlineSettings
    on_changed_input: str
    deferrable: bool
    poll_interval: float
    max_poll_interval: float
    delete_input_files: bool
    quota: BatchQuota

    @classmethod
    def of(cls, task_id: str, *, mode: str, online_threshold: int, deadline: float | timedelta | None,
           on_deadline: str, rerun_failed_online: bool, online_concurrency: int, online_rpm: int | None,
           online_tpm: int | None, on_changed_input: str, deferrable: bool, poll_interval: float,
           max_poll_interval: float, delete_input_files: bool, quota: BatchQuota) -> BatchParams:
        """The parameters, checked. :raises InputError: naming the task and the parameter."""
        try:
            seconds = deadline.total_seconds() if isinstance(deadline, timedelta) else deadline
            routing = Routing(mode, online_threshold, seconds, on_deadline, rerun_failed_online)
            WaitPolicy(poll_interval, max_poll_interval)  # checked now, built with the deadline later
            online = OnlineSettings(concurrency=online_concurrency, rpm=online_rpm, tpm=online_tpm,
                                    service_tier="flex" if mode == "flex" else "standard")
        except InputError as exc:
            raise InputError(f"{task_id}: {exc}") from None
        check_on_changed_input(task_id, on_changed_input)
        return cls(routing, online, on_changed_input, deferrable, poll_interval, max_poll_interval, delete_input_files,
                   quota)


def check_on_changed_input(task_id: str, value: str) -> None:
    """:raises InputError: unless ``value`` is one of ``ON_CHANGED_INPUT``, naming the task."""
    if value not in ON_CHANGED_INPUT:
        raise InputError(f"{task_id}: on_changed_input must be one of {ON_CHANGED_INPUT}, got {value!r}")
