"""The batch operators' steps, as functions their ``execute`` methods call: submit (once per task
instance), wait (deferred to the triggerer, or in the worker), and land, whatever the jobs' endings.

``GeminiBatchOperator`` and ``GeminiBatchEmbedOperator`` run all of them, ``GeminiSubmitBatchOperator``
the submit: by composition, each operator a direct subclass of the shared base. The steps hand the
stages (``operators.prepare``, ``operators.paths``) the plan and plain values, never the operator.
The operator modules import this one when a task runs, not when the DAG is parsed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import Context

from gemini_batch_provider.core import waiting
from gemini_batch_provider.core.answers import Reuse
from gemini_batch_provider.core.backend import BatchBackend
from gemini_batch_provider.core.cost import estimate
from gemini_batch_provider.core.errors import PollingFailed
from gemini_batch_provider.core.estimate import checked_cost
from gemini_batch_provider.core.jobs import JobStatus, validate_event
from gemini_batch_provider.core.land import Rerun, endings_error
from gemini_batch_provider.core.ledger import Ledger, LedgerStore, keys_location, ledger_location, reused_location
from gemini_batch_provider.core.limits import BatchQuota
from gemini_batch_provider.core.plan import BatchPlan, OnlineSettings, RunInput
from gemini_batch_provider.core.submit import Submission, Wave, next_wave
from gemini_batch_provider.core.summary import JOBS_XCOM_KEY, jobs_record
from gemini_batch_provider.core.vocabulary import WaitStatus
from gemini_batch_provider.links import GeminiBatchJobLink
from gemini_batch_provider.operators import online, paths, reuse
from gemini_batch_provider.operators.params import BatchParams
from gemini_batch_provider.operators.prepare import prepare, read_input
from gemini_batch_provider.operators.task import (
    fail_after_landing,
    refusing,
    run_identity,
    scratch_folder,
    task_of_identity,
)
from gemini_batch_provider.triggers.batch import GeminiBatchJobTrigger

if TYPE_CHECKING:
    from pathlib import Path

    from gemini_batch_provider.operators.base import GeminiRequestsOperator
    from gemini_batch_provider.storage import Storage

CANCEL_SETTLE_SECONDS = 60.0  # how long a deadline's cancel may take to show before landing


def ledger_store(plan: BatchPlan, storage: Storage) -> LedgerStore:
    """The ledger, keys file and reused rows file beside ``output_path``."""
    out = plan.output_path
    return LedgerStore(storage.at(ledger_location(out)), storage.at(keys_location(out)),
                       storage.at(reused_location(out)))


def submit(task: GeminiRequestsOperator, context: Context, plan: BatchPlan, backend: BatchBackend,
           run_input: RunInput, on_changed_input: str, scratch: Path, reused: Reuse | None = None,
           quota: BatchQuota | None = None) -> Wave | None:
    """Submit every shard not submitted yet (``paths.submit_batch``), in waves under ``quota`` (see
    ``core.submit``), the ``reused`` rows kept beside the ledger; then the jobs' link and their
    record for the Gemini batches page. The first wave, None when the input has no rows."""
    how = Submission(identity=run_identity(context), later_try=context["ti"].try_number > 1,
                     on_changed_input=on_changed_input, scratch=scratch,
                     reused_rows_file=reused.rows_file if reused else None, reused_rows=reused.rows if reused else 0,
                     reused_fingerprint=reused.fingerprint if reused and reused.rows else "", quota=quota)
    if quota is not None:  # a full quota waits for a later wave, not in the worker
        task.hook.create_429_attempts = 1
    wave = paths.submit_batch(plan, backend, ledger_store(plan, task.storage()), run_input, how, task.log)
    if wave is not None:
        if wave.ledger.identity == how.identity:  # jobs another run created are not this task's to cancel
            task.submitted_jobs = wave.ledger.job_names
        _record_jobs(task, context, plan, backend, wave.ledger)
    return wave


def _record_jobs(task: GeminiRequestsOperator, context: Context, plan: BatchPlan, backend: BatchBackend,
                 ledger: Ledger) -> None:
    """The jobs' link and their record for the Gemini batches page (again after each wave)."""
    link = backend.jobs_url(ledger.job_names)
    GeminiBatchJobLink.persist(context, link)
    context["ti"].xcom_push(key=JOBS_XCOM_KEY, value=jobs_record(
        task.gemini_conn_id, plan.model, ledger.job_names, link, plan.output_path, ledger.estimated_cost_usd,
        ledger.first_submitted_at))


def record_landing(task: GeminiRequestsOperator, context: Context, plan: BatchPlan, backend: BatchBackend,
                   jobs: tuple[JobStatus, ...]) -> None:
    """For a task that lands jobs another task submitted (``GeminiBatchResultsOperator``): the
    jobs' record for the Gemini batches page, naming the task that submitted them when their
    ledger says so (its identity), with that task's estimate and submission time, so that the page
    shows the two as one batch."""
    names = [job.name for job in jobs]
    ledger = ledger_store(plan, task.storage()).load()
    ours = ledger is not None and ledger.job_names == names
    context["ti"].xcom_push(key=JOBS_XCOM_KEY, value=jobs_record(
        task.gemini_conn_id, plan.model, names, backend.jobs_url(names), plan.output_path,
        ledger.estimated_cost_usd if ours else None, ledger.first_submitted_at if ours else None,
        task_of_identity(ledger.identity, context) if ours else None))


def execute(task: GeminiRequestsOperator, params: BatchParams, staging_uri: str | None,
            context: Context) -> dict[str, Any]:
    """Route the rows (online, or batch), submit, then wait: deferred (the task resumes in
    ``execute_complete``), or in the worker. The summary, once landed."""
    plan, backend, storage = task.plan(), task.backend(context, staging_uri), task.storage()
    GeminiBatchJobLink.no_jobs(context)  # until it creates some
    with scratch_folder(run_identity(context)) as scratch:  # its downloads go when the try ends, deferred or not
        with refusing(task.task_id):
            run_input = prepare(plan, backend, storage, scratch, task.log)
            reused = reuse.decide(plan, storage, run_input, ledger_store(plan, storage), run_identity(context), scratch,
                                  task.log)
            if reused is not None and not reused.sent:
                return task.landed_summary(paths.land_reused(plan, storage, reused, scratch, task.log))
            to_send = reused.narrowed(run_input) if reused is not None else run_input
            rows_online, settings = _routed_online(params, plan, to_send, task.log)
            if rows_online is None:
                if params.deferrable:
                    task.hook.check_deferred_wait_can_read()
                wave = submit(task, context, plan, backend, to_send, params.on_changed_input, scratch, reused,
                              params.quota)
            else:
                _, cost = checked_cost(plan, backend, to_send, False, task.log, settings.service_tier)
        if rows_online is not None:
            return online.land_all(task, context, plan, backend, to_send, rows_online, cost, settings, scratch,
                                   reused, _flex_deadline(params, settings))
    if wave is None:
        return land(task, params, context, plan, backend, (), past_deadline=False)
    return _wait(task, params, staging_uri, context, backend, wave)


def _wait(task: GeminiRequestsOperator, params: BatchParams, staging_uri: str | None, context: Context,
          backend: BatchBackend, wave: Wave) -> dict[str, Any]:
    """Wait (deferred, or in the worker) for every job to end; while shards wait for room in the
    batch quota, only for a running job to end, or until the time the API asked to wait after a
    429, then create the next wave."""
    while True:
        ledger, wave_wait = wave.ledger, bool(wave.ledger.waiting)
        names = list(wave.running) if wave_wait else ledger.job_names
        wake_at = time.time() + wave.retry_after if wave_wait and wave.retry_after is not None else None
        deadline = _deadline_at(params, ledger)
        if params.deferrable:
            task.defer(trigger=GeminiBatchJobTrigger(
                job_names=names, gemini_conn_id=task.gemini_conn_id, poll_interval=params.poll_interval,
                max_poll_interval=params.max_poll_interval, deadline=deadline, cancel_on_kill=True, wave=wave_wait,
                wake_at=wake_at), method_name="execute_complete")
        policy = waiting.WaitPolicy(params.poll_interval, params.max_poll_interval, deadline=deadline,
                                    wave=wave_wait, wake_at=wake_at)
        event = asyncio.run(waiting.wait_logged(names, waiting.InWorker(backend), policy, task.log))
        if event.status is not WaitStatus.ROOM:
            return execute_complete(task, params, staging_uri, context, event.payload())
        wave = _next_wave(task, params, context, backend)


def _next_wave(task: GeminiRequestsOperator, params: BatchParams, context: Context, backend: BatchBackend) -> Wave:
    """Create the waiting shards' jobs the quota now has room for (``core.submit.next_wave``)."""
    plan = task.plan()
    task.hook.create_429_attempts = 1  # a full quota waits for the next wave, not in the worker
    wave = next_wave(plan, backend, ledger_store(plan, task.storage()), params.quota, task.log)
    _record_jobs(task, context, plan, backend, wave.ledger)
    return wave


def _routed_online(params: BatchParams, plan: BatchPlan, run_input: RunInput,
                   log: logging.Logger) -> tuple[int | None, OnlineSettings]:
    """The number of rows and the online engine's settings (Standard or Flex) when the routing
    (``Routing.route``) sends them online; None rows for the Batch API. Each row is built once to
    count them, so bad input fails before anything is sent; the choice is logged, with why."""
    routing = params.routing
    if routing.mode == "batch":
        return None, params.online
    found = estimate(run_input.requests(), plan.model)
    standard = found.usd(plan.budget.price(plan.model), batch=False)
    over_budget = None not in (standard, plan.budget.max_cost_usd) and standard > plan.budget.max_cost_usd
    path, why = routing.route(found.requests, params.online.concurrency, over_budget)
    log.info("%d rows go %s (%s).", found.requests, {"online": "online, Standard tier", "flex": "online, Flex tier",
                                                     "batch": "to the Batch API"}[path], why)
    if path == "batch":
        return None, params.online
    settings = dataclasses.replace(params.online, service_tier="flex") if path == "flex" else params.online
    return found.requests, settings


def _flex_deadline(params: BatchParams, settings: OnlineSettings) -> paths.FlexDeadline | None:
    """On Flex, the deadline counted from now (the Flex run's start), and where ``on_deadline``
    sends the rows Flex has not answered by then."""
    if settings.service_tier != "flex" or params.routing.deadline_s is None:
        return None
    return paths.FlexDeadline(time.time() + params.routing.deadline_s, params.routing.on_deadline)


def _deadline_at(params: BatchParams, ledger: Ledger) -> float | None:
    """The deadline as Unix time, anchored at the first create: it survives retries and restarts."""
    if params.routing.deadline_s is None or ledger.first_submitted_at is None:
        return None
    return ledger.first_submitted_at + params.routing.deadline_s


def execute_complete(task: GeminiRequestsOperator, params: BatchParams, staging_uri: str | None, context: Context,
                     event: dict[str, Any]) -> dict[str, Any]:
    """Resume after the wait: create the next wave when there is room for it (``room``); else
    download, join by key and land the results, whatever the jobs' endings; past the deadline,
    unfinished jobs are cancelled first, and shards still waiting for room are never created.

    :raises PollingFailed: the wait ended in an error. :raises JobEndedBadly: after landing."""
    ended = validate_event(event)
    if ended.status is WaitStatus.ERROR:
        raise PollingFailed(f"{task.task_id}: {ended.message}")
    backend, plan = task.backend(context, staging_uri), task.plan()
    if ended.status is WaitStatus.ROOM:
        return _wait(task, params, staging_uri, context, backend, _next_wave(task, params, context, backend))
    jobs = ended.jobs
    if ended.past_deadline:
        ledger = ledger_store(plan, task.storage()).load()
        names = ledger.job_names if ledger is not None and ledger.waiting else [job.name for job in jobs]
        jobs = tuple(asyncio.run(waiting.cancel_unfinished(names, waiting.InWorker(backend), task.log,
                                                           "Deadline passed", CANCEL_SETTLE_SECONDS)))
    return land(task, params, context, plan, backend, jobs, ended.past_deadline)


def land(task: GeminiRequestsOperator, params: BatchParams, context: Context, plan: BatchPlan, backend: BatchBackend,
         jobs: tuple[JobStatus, ...], past_deadline: bool) -> dict[str, Any]:
    """Land ``jobs`` (``paths.land_batch``), the rows the routing sends online run so; the summary.

    :raises JobEndedBadly: after landing, for jobs that did not succeed (unless past the deadline
        with ``on_deadline="online"``, whose rows finished online)."""
    routing = params.routing
    rerun = Rerun(failed=routing.rerun_failed_online, unanswered=past_deadline and routing.online_after_deadline)
    how = paths.Landing(rerun, params.online, params.delete_input_files)
    return land_jobs(task, context, plan, backend, jobs, how,
                     check_endings=not (past_deadline and routing.online_after_deadline))


def land_jobs(task: GeminiRequestsOperator, context: Context, plan: BatchPlan, backend: BatchBackend,
              jobs: tuple[JobStatus, ...], how: paths.Landing, check_endings: bool = True) -> dict[str, Any]:
    """Land ended jobs into the results file, in a scratch folder of the try's; fail after landing
    when a job did not succeed (``check_endings``); once all is well, delete the uploaded media."""
    store = ledger_store(plan, task.storage())
    if jobs:
        GeminiBatchJobLink.persist(context, backend.jobs_url([job.name for job in jobs]))
    else:
        GeminiBatchJobLink.no_jobs(context)
    with scratch_folder(run_identity(context)) as scratch:
        run_input = read_input(plan, task.storage(), scratch)
        writer = paths.open_writer(plan, task.storage(), _digests(store, jobs, scratch), scratch, task.log)
        summary = task.landed_summary(paths.land_batch(plan, backend, task.hook.client, store, run_input, jobs, how,
                                                       writer, scratch, task.log))
        fail_after_landing(context, task.log, summary, endings_error(jobs, summary) if check_endings else None)
        paths.delete_media_files(plan, backend, store, run_input, task.log)
    return summary


def _digests(store: LedgerStore, jobs: tuple[JobStatus, ...], scratch: Path) -> Iterator[tuple[str, str]]:
    """The request digests the ledger's keys file recorded when the jobs were submitted (none for
    jobs it does not record: their requests are not known for sure)."""
    ledger = store.load()
    if ledger is None or ledger.keys_file is None or ledger.job_names != [job.name for job in jobs]:
        return iter(())
    return store.digests(ledger, scratch)


def on_kill(task: GeminiRequestsOperator) -> None:
    """Cancel the jobs this task created that have not ended."""
    if task.submitted_jobs:
        asyncio.run(waiting.cancel_unfinished(task.submitted_jobs, waiting.InWorker(task.hook.backend), task.log,
                                              "Task killed"))
