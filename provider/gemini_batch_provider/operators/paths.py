"""The two paths a try's rows take once prepared (``operators.prepare``): online, through the
online engine; and batch, submitted (``core.submit``), then, once the jobs have ended, landed
(``core.land``). Both end in the same results file and summary (``core.summary``).

Each function takes the plan, the backend and plain values, and gives plain values back: a
ledger, a summary, and the error to fail with once the results have landed (``task.fail_after_landing``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemini_batch_provider.core.answers import Reuse, reused_rows
from gemini_batch_provider.core.backend import BatchBackend
from gemini_batch_provider.core.errors import RowsUnanswered
from gemini_batch_provider.core.estimate import checked_cost
from gemini_batch_provider.core.jobs import JobStatus
from gemini_batch_provider.core.keys import KeyIndex
from gemini_batch_provider.core.land import Rerun, keys_by_shard, land
from gemini_batch_provider.core.ledger import Ledger, LedgerStore
from gemini_batch_provider.core.plan import BatchPlan, OnlineSettings, RunInput
from gemini_batch_provider.core.results import ResultsWriter, no_result_row
from gemini_batch_provider.core.submit import Submission, Wave, submit_wave
from gemini_batch_provider.core.summary import summarize
from gemini_batch_provider.core.vocabulary import RowPath, RowStatus
from gemini_batch_provider.operators import reuse
from gemini_batch_provider.operators.prepare import drop_media, scan_media, stage_media
from gemini_batch_provider.storage import Storage, results_writer

if TYPE_CHECKING:
    from google import genai


def open_writer(plan: BatchPlan, storage: Storage, digests: Iterable[tuple[str, str]], scratch: Path,
                log: logging.Logger) -> ResultsWriter:
    """The writer of the results file at ``output_path`` (whole or not at all, ``storage``), which
    records each row's request digest, from ``digests``, and adds the answers it lands to the
    answer store before it publishes them (``operators.reuse.record_answers``)."""
    schema = plan.output_schema
    writer = results_writer(storage.at(plan.output_path), schema.check if schema is not None else None, scratch)
    writer.price = plan.price()
    reuse.record_answers(plan, storage, writer, digests, scratch, log)
    return writer


def landed(writer: ResultsWriter, rows: int, path: str, jobs: list[str], plan: BatchPlan,
           estimated_cost_usd: float | None, log: logging.Logger) -> dict[str, Any]:
    """The XCom summary shared by both paths (``core.summary``), logged; never the rows themselves."""
    summary = summarize(writer, rows, path, jobs, plan.model, estimated_cost_usd, plan.price())
    log.info("Results landed: %s", summary)
    estimated, actual = summary["estimated_cost_usd"], summary["cost_usd"]
    if estimated is not None and actual is not None:
        log.info("Cost: estimated $%.4f, actual $%.4f (%.1fx the actual; the estimate's assumptions are in its line "
                 "above).", estimated, actual, estimated / actual if actual else float("inf"))
    if reused := summary["rows_by_path"].get(RowPath.REUSED):
        log.info("%d rows reused earlier answers: nothing sent for them; they cost $%s when answered.", reused,
                 "?" if summary["saved_cost_usd"] is None else f"{summary['saved_cost_usd']:.4f}")
    return summary


def land_reused(plan: BatchPlan, storage: Storage, reused: Reuse, scratch: Path, log: logging.Logger) -> dict[str, Any]:
    """Land a run whose every row earlier answers settle: nothing is sent; the summary."""
    writer = open_writer(plan, storage, (), scratch, log)
    try:
        reuse.write_reused(reused.rows_file, writer)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return landed(writer, reused.rows, RowPath.REUSED, [], plan, None, log)


@dataclasses.dataclass(frozen=True)
class FlexDeadline:
    """When a Flex run stops (``stop_at``, Unix time), and where the rows Flex has not answered by
    then go (``to``): ``online``, the Standard tier; ``cancel``: they land ``cancelled`` and the task fails."""

    stop_at: float
    to: str


def land_online(plan: BatchPlan, backend: BatchBackend, client: genai.Client, run_input: RunInput, rows: int,
                estimated_cost_usd: float | None, settings: OnlineSettings, writer: ResultsWriter,
                log: logging.Logger, reused: Reuse | None = None,
                deadline: FlexDeadline | None = None) -> tuple[dict[str, Any], RowsUnanswered | None]:
    """Write the ``reused`` rows, then run every row of ``run_input`` online into ``writer``, until
    the ``deadline`` on Flex (the rest where it says); the summary, and the error to fail with when
    rows ran out of attempts on transient errors (they landed ``failed``) or were cancelled."""
    uploaded = stage_media(run_input)
    try:
        reuse.write_reused(reused.rows_file if reused else None, writer)
        from gemini_batch_provider.core.online import run_online  # the SDK's engine: only once a task runs

        stats = run_online(client, plan.model, run_input.requests(), rows, settings, writer, log,
                           deadline.stop_at if deadline else None)
        gave_up, cancelled = stats.gave_up, 0
        if stats.left and deadline is not None and deadline.to == "online":
            log.info("%d rows Flex had not answered by the deadline go to the Standard tier.", len(stats.left))
            gave_up += run_online(client, plan.model, ((k, r) for k, r in run_input.requests() if k in stats.left),
                                  len(stats.left), dataclasses.replace(settings, service_tier="standard"), writer,
                                  log).gave_up
        elif stats.left:
            cancelled = len(stats.left)
            for key, _ in run_input.requests():
                if key in stats.left:
                    writer.write(no_result_row(key, RowStatus.CANCELLED, "Flex had not answered it by the deadline",
                                               RowPath.FLEX))
    except BaseException:
        writer.abort()
        raise
    finally:
        drop_media(plan, backend, run_input, log, uploaded)
    writer.close()
    path = RowPath.FLEX if settings.service_tier == "flex" else RowPath.ONLINE
    summary = landed(writer, sum(writer.counts.values()), path, [], plan, estimated_cost_usd, log)
    if cancelled:
        return summary, RowsUnanswered(
            f"Flex had not answered {cancelled} of {rows} rows by the deadline; they landed as 'cancelled' in "
            f"{summary['output_path']}. Set on_deadline='online' to finish such rows on the Standard tier, or a "
            "later deadline")
    if not gave_up:
        return summary, None
    return summary, RowsUnanswered(
        f"the API did not answer {gave_up} of {rows} rows in {settings.max_attempts} attempts each (transient "
        f"errors: 429, 5xx, timeouts or dropped connections); they landed as 'failed' with their last error in "
        f"{summary['output_path']}. Lower concurrency/rpm/tpm to the model's quota or raise max_attempts; a retry of "
        "the task runs every row again")


def submit_batch(plan: BatchPlan, backend: BatchBackend, store: LedgerStore, run_input: RunInput, how: Submission,
                 log: logging.Logger) -> Wave | None:
    """Upload the media (rows, media and the budget checked first), then submit (``core.submit``);
    the first wave, None for no rows.

    :raises InputError: bad input or settings, before anything is uploaded."""
    if plan.media.fields:
        _, estimated = checked_cost(plan, backend, run_input, True, log)
        uploaded = stage_media(run_input)
        if uploaded and backend.media_expire:
            log.warning("%d media files were uploaded to the Files API, which keeps files 48 h: rows of a job still "
                        "unfinished then fail. Set deadline under 48 h to finish them online.", len(uploaded))
        how = dataclasses.replace(how, media_files=tuple(uploaded), cost_checked=True, estimated_cost_usd=estimated)
    return submit_wave(plan, run_input, backend, store, how, log)


@dataclasses.dataclass(frozen=True)
class Landing:
    """How ended jobs land: which rows go online (``rerun``, with ``online`` settings and the
    ``client`` that runs them) and whether the uploaded input files are deleted afterwards."""

    rerun: Rerun
    online: OnlineSettings
    delete_input_files: bool


def land_batch(plan: BatchPlan, backend: BatchBackend, client: genai.Client, store: LedgerStore, run_input: RunInput,
               jobs: Sequence[JobStatus], how: Landing, writer: ResultsWriter, scratch: Path,
               log: logging.Logger) -> dict[str, Any]:
    """Land ended jobs (``core.land``) into ``writer``, the rows ``how.rerun`` picks online (their
    media scanned and uploaded then); the summary."""
    ledger = store.load()
    never_created: frozenset[int] = frozenset()  # shards still waiting for room at the deadline
    try:
        if ledger is not None and ledger.job_names == [job.name for job in jobs]:
            never_created = frozenset(shard.index for shard in ledger.waiting)
            copy = store.reused_copy(ledger, scratch)
            if copy is not None:
                with KeyIndex() as keys:  # checked as written: a mismatch drops the results (writer.abort)
                    for row in reused_rows(copy, ledger.reused_rows, str(ledger.reused_file), keys):
                        writer.write(row)
        again = land(jobs, keys_by_shard(jobs, ledger, store, backend, run_input, plan.limits), backend, writer,
                     how.rerun, log, scratch, never_created)
        if again:
            log.info("%d rows go online (deadline passed, or retryable errors).", len(again))
            # A resumed task builds its media parts again (and finds what it uploaded before).
            run_input = scan_media(plan, backend, run_input, scratch, log)
            uploaded = stage_media(run_input)
            if ledger is not None and ledger.add_media(uploaded):
                store.save(ledger)
            from gemini_batch_provider.core.online import run_online

            run_online(client, plan.model, ((k, r) for k, r in run_input.requests() if k in again), len(again),
                       how.online, writer, log)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    drop_media(plan, backend, run_input, log)  # the local downloads; uploaded ones go once the task succeeds
    if ledger is not None and how.delete_input_files:
        delete_input_files(backend, store, ledger)
    path = RowPath.BATCH_AND_ONLINE if again else RowPath.BATCH
    estimated = ledger.estimated_cost_usd if ledger is not None else None
    return landed(writer, sum(writer.counts.values()), path, [job.name for job in jobs], plan, estimated, log)


def delete_input_files(backend: BatchBackend, store: LedgerStore, ledger: Ledger) -> None:
    """Delete the shards' uploaded input files, and say so in the ledger."""
    for shard in ledger.shards:
        if shard.input_file:
            backend.delete(shard.input_file)
            shard.input_file = None
    store.save(ledger)


def delete_media_files(plan: BatchPlan, backend: BatchBackend, store: LedgerStore, run_input: RunInput,
                       log: logging.Logger) -> None:
    """Once the task has succeeded: delete the media uploaded for its requests (unless the plan
    keeps them). A failing task keeps them, so that a retry finds them and its requests, hence the
    ledger's fingerprint, stay the same."""
    ledger = store.load()
    if ledger is None or not ledger.media_files or plan.media.keep_files:
        return
    drop_media(plan, backend, run_input, log, ledger.media_files)
    ledger.media_files = []
    store.save(ledger)

