"""Answer reuse in a task (``core.answers``): which rows earlier answers settle, before anything is
sent; those rows written into the results; and, once every row is written and before the results
are published, the answers this run paid for added to the answer store.

Each function takes the plan and plain values; none calls back into an operator.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from gemini_batch_provider.core.answers import AnswerIndex, AnswerStore, Digests, Reuse, reused_from_file, split_reused
from gemini_batch_provider.core.ledger import LedgerStore
from gemini_batch_provider.core.plan import BatchPlan, RunInput
from gemini_batch_provider.core.requests import request_digest
from gemini_batch_provider.core.results import ResultsWriter
from gemini_batch_provider.storage import Storage


def decide(plan: BatchPlan, storage: Storage, run_input: RunInput, ledgers: LedgerStore | None, identity: str | None,
           scratch: Path, log: logging.Logger) -> Reuse | None:
    """The rows settled before sending: those earlier answers settle, and the bad rows refused under
    ``on_bad_row="land"`` (``run_input.refuse_bad_rows``); None when there are none to look for
    (reuse off, or media, and no refusing).

    A task instance that already submitted (its ledger beside ``output_path``, ``ledgers``) keeps
    the rows it recorded then, so that its retries send exactly what it sent. Otherwise each row's
    request is looked up among the answers of the results file at ``output_path`` and of the
    answer store (``plan.reuse``).

    :raises InputError: a bad row, unless refused (every request is built here). :raises
        LedgerError: a recorded reuse that does not match its ledger."""
    settings, refusing = plan.reuse, run_input.refuse_bad_rows
    reusing = settings.enabled and not plan.media.fields
    if settings.enabled and plan.media.fields:
        log.info("Answer reuse: off for requests with media (their uploads are named anew each run); every row is "
                 "sent.")
    if not reusing and not refusing:
        return None
    old = ledgers.load() if ledgers is not None else None
    if ledgers is not None and old is not None and old.identity == identity:
        copy = ledgers.reused_copy(old, scratch)
        if copy is None:
            return None
        log.info("Rows settled before sending: %d as this task instance recorded them (%s).", old.reused_rows,
                 old.reused_file)
        return reused_from_file(copy, old.reused_rows, str(old.reused_file), run_input, scratch)
    with AnswerIndex(settings.max_age_s) as answers:
        earlier = _read_results(storage, plan.output_path, answers, scratch) if reusing else 0
        stored = 0
        if reusing and settings.answer_store:
            stored = AnswerStore(storage.folder(settings.answer_store)).read_into(answers, scratch, log)
        if not answers.size and not refusing:
            log.info("Answer reuse: no earlier answers (results at %s, answer store %s); every row is sent.",
                     plan.output_path, settings.answer_store or "none")
            return None
        reuse = split_reused(run_input, plan.model, answers, scratch)
    if reusing:
        log.info("Answer reuse: %d rows answered before, %d to send (%d answers in the results at %s, %d in the "
                 "answer store%s).", reuse.rows - reuse.refused, reuse.sent, earlier, plan.output_path, stored,
                 f" {settings.answer_store}" if settings.answer_store else ": none")
    if reuse.refused:
        log.warning("%d bad rows refused (on_bad_row='land'): they land 'failed', path 'refused', and are not sent. "
                    "The first: %s", reuse.refused, "; ".join(reuse.first_refusals))
    return reuse


def _read_results(storage: Storage, output_path: str, answers: AnswerIndex, scratch: Path) -> int:
    """Add the answers of the results file at ``output_path`` (the run being replaced) to ``answers``."""
    earlier = storage.at(output_path)
    if not earlier.exists():  # the first run
        return 0
    path = earlier.local
    if path is None:
        path = scratch / "earlier-results.jsonl"
        earlier.download(path)
    with path.open("rb") as lines:
        return answers.add_lines(lines)


def write_reused(rows_file: Path | None, writer: ResultsWriter) -> None:
    """Write the reused rows (``Reuse.rows_file``, or a ledger's, checked) into the results."""
    if rows_file is None:
        return
    with rows_file.open("rb") as lines:
        for line in lines:
            writer.write(orjson.loads(line))


def record_answers(plan: BatchPlan, storage: Storage, writer: ResultsWriter, digests: Iterable[tuple[str, str]],
                   scratch: Path, log: logging.Logger) -> None:
    """Have ``writer`` record each row's ``request_digest`` (``(key, digest)`` pairs; none for
    requests with media) and, with an answer store, keep the answers it writes and add them to the
    store before it publishes the results (``store_answers``). In that order, a landing killed at
    any point loses no answer paid for: the store has them, or no results were published and a
    retry lands the jobs again."""
    if plan.media.fields:
        return
    writer.digests = Digests(digests)
    if plan.reuse.answer_store:
        writer.keep_answers(scratch / "new-answers.jsonl")
        writer.before_publish = lambda: store_answers(plan, storage, scratch, log)


def sent_digests(plan: BatchPlan, run_input: RunInput) -> Iterator[tuple[str, str]]:
    """``(key, request_digest)`` of each row ``run_input`` sends (reused rows carry theirs)."""
    for key, request in run_input.requests():
        yield key, request_digest(plan.model, request)


def store_answers(plan: BatchPlan, storage: Storage, scratch: Path, log: logging.Logger) -> None:
    """Once every row is written: add the answers this run paid for to the answer store."""
    kept = scratch / "new-answers.jsonl"
    if not plan.reuse.answer_store or not kept.is_file():
        return
    part = AnswerStore(storage.folder(plan.reuse.answer_store)).append(kept)
    kept.unlink()
    if part is not None:
        log.info("Answer store %s: this run's answers added as %s.", plan.reuse.answer_store, part)
