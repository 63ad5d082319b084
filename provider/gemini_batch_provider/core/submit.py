"""Submitting a plan: its requests written as shards, each uploaded and its batch job created, once.

What was created is kept in the ledger (``core.ledger``) and in each job's display name, written
before and after each create call: a retry, a worker killed right after a create, or a cleared task
reattaches to the jobs of the same task instance instead of paying twice; a task instance whose
requests are those of another's jobs still running for the same output (a re-run started before the
first run finished) waits on those jobs too. Jobs that ended FAILED or
EXPIRED are submitted anew by the next try; a CANCELLED job was somebody's decision (ours at a
deadline, or a user's) and is reattached to.

Under the project's batch quota (``Submission.quota``), jobs go in waves: every shard is uploaded,
the jobs that fit are created, and the rest are recorded ``waiting``; once earlier jobs end,
``next_wave`` creates the next that fit. A create the API refuses with 429 (the quota is full, as
others' jobs may make it) created nothing, so its shard waits too instead of failing the task.

The API is reached through a ``core.backend.BatchBackend``, so this module holds no client, no
Airflow, and no knowledge of which API it submits to.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .backend import BatchBackend
from .errors import InputError, LedgerError
from .estimate import counted_ratio
from .ledger import CREATED, CREATING, PENDING, WAITING, WAY_OUT, Ledger, LedgerStore, ShardRecord, display_name
from .limits import BatchQuota
from .plan import BatchPlan, RunInput
from .shards import KEYS_FILE, Shard, ShardedInput, write_shards
from .transient import is_quota_refusal, is_retryable, server_retry_delay
from .vocabulary import JobState

RESUBMIT_STATES = frozenset({JobState.FAILED, JobState.EXPIRED})
DEFAULT_QUOTA_WAIT_S = 60.0  # before trying a create the API refused with 429 again, when it names no delay


@dataclass(frozen=True)
class Submission:
    """Who submits, and how.

    :param identity: the task instance's run-stable identity (the same for every try).
    :param later_try: not the task instance's first try: jobs may exist that no ledger records.
    :param on_changed_input: ``fail`` or ``submit`` (new jobs) when the input differs from what the
        task instance already submitted.
    :param media_files: the media uploaded for the requests (kept in the ledger, removed after landing).
    :param scratch: where the input files are built before upload (in a folder removed afterwards);
        the system's temporary folder when None.
    :param cost_checked: the budget was checked already, at ``estimated_cost_usd`` (a media run
        checks it before its media are uploaded); else submit checks it once every request is built.
    :param estimated_cost_usd: that estimate, US dollars (None: no known price).
    :param reused_rows_file: the rows taken from earlier answers (``core.answers.Reuse``), kept
        beside the ledger; ``reused_rows`` of them. None: no row reused.
    :param reused_fingerprint: their ``Reuse.fingerprint``, part of the submission's fingerprint: a run
        that sends the same rows but reuses other answers is another input.
    :param quota: the project's batch limits: jobs are created in waves that fit them, and a create
        the API refuses with 429 waits for the next wave (``submit_wave``). None: every job is
        created at once, and a 429 (after the hook's own tries) is raised.
    """

    identity: str
    later_try: bool = False
    on_changed_input: str = "fail"
    media_files: tuple[str, ...] = ()
    scratch: Path | None = None
    cost_checked: bool = False
    estimated_cost_usd: float | None = None
    reused_rows_file: Path | None = None
    reused_rows: int = 0
    reused_fingerprint: str = ""
    quota: BatchQuota | None = None


@dataclass(frozen=True)
class Wave:
    """What a submission left: the ledger (its ``waiting`` shards not created yet), the jobs still
    running, whose endings free room in the quota, and the seconds the API asked to wait when it
    refused a create with 429 (None: it refused none)."""

    ledger: Ledger
    running: tuple[str, ...] = ()
    retry_after: float | None = None


class ChangedInput(InputError):
    """The input or request settings differ from what this task instance already submitted."""


def submit(plan: BatchPlan, run_input: RunInput, backend: BatchBackend, store: LedgerStore, how: Submission,
           log: logging.Logger | None = None) -> Ledger | None:
    """Submit every shard of ``run_input``'s requests not submitted yet; the ledger (None for no rows).

    The requests' estimated cost is checked against ``plan.budget`` once they are all built, before
    anything is uploaded (unless ``how.cost_checked``; ``core.estimate``), and kept in the ledger.

    :raises InputError: a bad row (nothing was uploaded).
    :raises BudgetExceeded: the estimated cost is over the budget (nothing was uploaded).
    :raises ChangedInput: the input changed since this task instance submitted, under ``fail``.
    :raises LedgerError: the ledger can't be read, or names jobs that are gone or not its own.
    """
    wave = submit_wave(plan, run_input, backend, store, how, log)
    return wave.ledger if wave is not None else None


def submit_wave(plan: BatchPlan, run_input: RunInput, backend: BatchBackend, store: LedgerStore, how: Submission,
                log: logging.Logger | None = None) -> Wave | None:
    """``submit``, in waves under ``how.quota``: every shard uploaded, the jobs created that the
    quota has room for, the rest left ``waiting`` for ``next_wave``. None for no rows. Raises as ``submit``."""
    return _Submitter(plan, backend, store, how, log or logging.getLogger(__name__)).run(run_input)


def next_wave(plan: BatchPlan, backend: BatchBackend, store: LedgerStore, quota: BatchQuota,
              log: logging.Logger | None = None) -> Wave:
    """Create the jobs of the ledger's waiting shards that the quota now has room for (one poll of
    each recorded job tells which still run), as ``submit_wave`` does; the next wave.

    :raises LedgerError: there is no ledger, or it names jobs that are gone or not its own."""
    ledger = store.load()
    if ledger is None:
        raise LedgerError(f"the ledger {store.ledger.url} of this task's waiting shards is gone; {WAY_OUT}")
    submitter = _Submitter(plan, backend, store, Submission(identity=ledger.identity, quota=quota),
                           log or logging.getLogger(__name__))
    for record in ledger.shards:
        if record.job and not store.recorded_job(record, backend).terminal:
            submitter.running[record.job] = record.tokens
    return submitter._fill(ledger)


class _Submitter:
    def __init__(self, plan: BatchPlan, backend: BatchBackend, store: LedgerStore, how: Submission,
                 log: logging.Logger) -> None:
        self.plan, self.backend, self.store, self.how, self.log = plan, backend, store, how, log
        self.running: dict[str, int] = {}  # the jobs not ended yet, and their estimated tokens

    def run(self, run_input: RunInput) -> Wave | None:
        plan = self.plan
        with tempfile.TemporaryDirectory(prefix="gemini-input-", dir=self.how.scratch) as tmp:
            reused = self.how.reused_fingerprint
            salt = f"{plan.salt}\nreused {reused}" if reused else plan.salt
            sharded = write_shards(run_input.requests(), Path(tmp), plan.limits, salt=salt, model=plan.model)
            if sharded.requests == 0:
                self.log.warning("The input has no records: no batch job is created.")
                return None
            estimated = self.how.estimated_cost_usd if self.how.cost_checked else plan.budget.checked(
                plan.model, sharded.estimate, True, counted_ratio(plan, self.backend, run_input, self.log), self.log)
            self.log.info("Built %d requests in %d shard(s): %s", sharded.requests, len(sharded.shards),
                          [(s.requests, s.size_bytes) for s in sharded.shards])
            ledger, fresh = self._ledger_for(sharded, Path(tmp) / KEYS_FILE)
            ledger.estimated_cost_usd = estimated
            ledger.add_media(list(self.how.media_files))
            # A create may have gone through unrecorded: on a shard marked creating, and on any shard
            # of a later try (a fresh ledger may be another machine's first), look its job up by name,
            # all in one listing.
            look_up = not fresh or self.how.later_try
            found = self.backend.find_jobs(r.display_name for r in ledger.shards
                                           if not r.job and (r.status == CREATING or look_up))
            for shard, record in zip(sharded.shards, ledger.shards, strict=True):
                self._prepare_shard(ledger, record, shard, found.get(record.display_name))
            return self._fill(ledger)

    def _ledger_for(self, sharded: ShardedInput, keys: Path) -> tuple[Ledger, bool]:
        """The ledger to go on with, and whether it is new (its keys file kept, before any create)."""
        identity = self.how.identity
        old = self.store.load()
        if old is not None and old.identity == identity:
            if old.fingerprint == sharded.fingerprint:
                self.log.info("This task instance already submitted %s; reattaching.", old.job_names)
                return old, False
            if self.how.on_changed_input == "fail":
                raise ChangedInput(
                    f"the input or request settings changed since this task instance created {old.job_names} "
                    f"(ledger {self.store.ledger.url}); set on_changed_input='submit' to submit anew, or delete "
                    "the ledger")
            self.log.warning("Input changed since %s were created; submitting anew and leaving them as they are.",
                             old.job_names)
        elif old is not None and old.fingerprint == sharded.fingerprint and self._running(old):
            self.log.info("%s is already waiting on %s for these same requests and output (ledger %s); this task "
                          "instance waits on them too instead of creating new ones.", old.identity, old.job_names,
                          self.store.ledger.url)
            return old, False
        elif old is not None:
            self.log.warning("The ledger %s was written by %s, whose jobs %s are left as they are; this task "
                             "instance's ledger replaces it.", self.store.ledger.url, old.identity, old.job_names)
        count = len(sharded.shards)
        ledger = Ledger(identity=identity, fingerprint=sharded.fingerprint, shards=[
            ShardRecord(index=s.index, requests=s.requests, tokens=s.tokens,
                        display_name=display_name(identity, sharded.fingerprint, s.index, count))
            for s in sharded.shards
        ])
        self.store.put_keys(keys, ledger)
        if self.how.reused_rows_file is not None and self.how.reused_rows:
            self.store.put_reused(self.how.reused_rows_file, self.how.reused_rows, ledger)
        self.store.save(ledger)
        return ledger, True

    def _running(self, ledger: Ledger) -> bool:
        """Whether a job of ``ledger`` (another task instance's) is still running: checked to be its
        shard's (``LedgerStore.recorded_job``); one that is gone or not its shard's is not."""
        for record in ledger.shards:
            try:
                if record.job and not self.store.recorded_job(record, self.backend).terminal:
                    return True
            except LedgerError:
                return False
        return False

    def _prepare_shard(self, ledger: Ledger, record: ShardRecord, shard: Shard, found: str | None) -> None:
        """Reattach to the shard's job, or to ``found`` (its job looked up by display name), or upload
        its input for a job to be created (``_fill``)."""
        backend = self.backend
        if record.job:
            status = self.store.recorded_job(record, backend)
            if status.state not in RESUBMIT_STATES:
                self.log.info("Shard %d: reattached to %s (%s).", record.index, record.job, status.state)
                if not status.terminal:
                    self.running[record.job] = record.tokens
                return
            self.log.warning("Shard %d: %s ended %s; submitting it anew.", record.index, record.job, status.state)
            record.attempt += 1
            record.display_name = display_name(ledger.identity, ledger.fingerprint, record.index,
                                               len(ledger.shards), record.attempt)
            record.job, record.status, record.input_file = None, PENDING, None
        elif found is not None:
            self._record_job(ledger, record, found, "found by display name")
            self.running[found] = record.tokens
            return
        if record.input_file is None:
            record.input_file = backend.upload_input(shard.path, record.display_name, record.index)

    def _fill(self, ledger: Ledger) -> Wave:
        """Create the jobs of the shards that have none, in shard order, while the quota has room
        (every one without a quota); from the first that does not fit, or that the API refuses with
        429, the rest wait for a later wave, recorded as ``waiting`` in the ledger."""
        quota, retry_after, blocked = self.how.quota, None, False
        for record in ledger.shards:
            if record.job:
                continue
            blocked = blocked or not (quota is None or quota.has_room(
                sum(self.running.values()), len(self.running), record.tokens))
            if not blocked:
                try:
                    self.running[self._create(ledger, record)] = record.tokens
                    continue
                except Exception as exc:
                    if quota is None or not is_quota_refusal(exc):
                        raise
                    blocked, retry_after = True, server_retry_delay(exc) or DEFAULT_QUOTA_WAIT_S
                    self.log.info("Shard %d: the API refused its create (429: the project's batch quota is full); "
                                  "it waits for room.", record.index)
            record.status = WAITING
        self.store.save(ledger)
        if waiting := ledger.waiting:
            self.log.info("%d of %d shards wait for room in the batch quota (%s); %d jobs are running.",
                          len(waiting), len(ledger.shards), quota, len(self.running))
        return Wave(ledger, tuple(self.running), retry_after)

    def _create(self, ledger: Ledger, record: ShardRecord) -> str:
        """Create the shard's job from its uploaded input; its name."""
        record.status = CREATING
        self.store.save(ledger)
        try:
            job = self.backend.create_job(self.plan.model, record.input_file, record.display_name, record.index,
                                          self.plan.embeddings, self.plan.priority)
        except Exception as exc:
            # A 5xx or a dropped connection may hide a job that was created: look before giving up.
            # A 429 was refused, so it created nothing.
            created = None if is_quota_refusal(exc) or not is_retryable(exc) else \
                self.backend.find_jobs([record.display_name]).get(record.display_name)
            if created is None:
                raise
            job = created
        self._record_job(ledger, record, job, f"created from {record.input_file}")
        return job

    def _record_job(self, ledger: Ledger, record: ShardRecord, job: str, how: str) -> None:
        record.job, record.status = job, CREATED
        if ledger.first_submitted_at is None:
            ledger.first_submitted_at = time.time()
        self.store.save(ledger)
        self.log.info("Shard %d (%d requests): %s, %s.", record.index, record.requests, job, how)
