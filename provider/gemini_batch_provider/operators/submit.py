"""GeminiSubmitBatchOperator: build, upload and submit batch jobs once per task instance."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, Context
from google.genai import types

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.ledger import (
    CREATED,
    CREATING,
    PENDING,
    Ledger,
    ShardRecord,
    display_name,
    ledger_location,
)
from gemini_batch_provider.core.shards import ShardedInput, write_shards
from gemini_batch_provider.core.transient import is_retryable
from gemini_batch_provider.core.vocabulary import JobState
from gemini_batch_provider.core.waiting import cancel_unfinished, in_thread
from gemini_batch_provider.hooks.gemini import GeminiHook
from gemini_batch_provider.links import GeminiBatchJobLink, batch_jobs_url
from gemini_batch_provider.operators.base import GeminiBatchRequestsOperator, run_identity

# A retry submits these shards anew: the job ended without answering, through no choice of ours.
# A CANCELLED job was somebody's decision (ours at a deadline, or a user's): it is reattached to.
RESUBMIT_STATES = frozenset({JobState.FAILED, JobState.EXPIRED})


class GeminiSubmitBatchOperator(GeminiBatchRequestsOperator):
    """Build the requests, split them over batch jobs, upload each shard and create its job, once.

    Every row is checked before anything is uploaded. What was created is kept in a ledger next to
    ``output_path`` (``<output_path>.gemini-batch.json``) and in each job's display name, written
    before and after each create call: a retry, a worker killed right after a create, or a cleared
    task reattaches to the jobs of the same task instance (dag, task, run, map index) instead of
    paying twice. Jobs that ended FAILED or EXPIRED are submitted anew by the next try. Takes the
    parameters of :class:`~gemini_batch_provider.operators.base.GeminiBatchRequestsOperator` and:

    :param on_changed_input: what a try does when the input or request settings differ from what
        the task instance already submitted: ``fail`` (default) or ``submit`` (new jobs; the old
        ones are left as they are, and logged).
    :param gcs_staging_uri: ``gs://bucket/prefix`` where a Vertex AI connection's input files are
        staged and its predictions written (templated; required with Vertex AI, unused otherwise).
    :return: (XCom) the job names, ``["batches/<id>", ...]``, in shard order.
    :raises AirflowFailException: bad input (nothing uploaded), or a changed input under ``fail``.
    """

    ON_CHANGED_INPUT = ("fail", "submit")
    operator_extra_links = (GeminiBatchJobLink(),)
    template_fields: Sequence[str] = (*GeminiBatchRequestsOperator.template_fields, "gcs_staging_uri")

    def __init__(self, *, on_changed_input: str = "fail", gcs_staging_uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gcs_staging_uri = gcs_staging_uri
        if on_changed_input not in self.ON_CHANGED_INPUT:
            raise ValueError(f"{self.task_id}: on_changed_input must be one of {self.ON_CHANGED_INPUT}, "
                             f"got {on_changed_input!r}")
        self.on_changed_input = on_changed_input
        self._ledger: Ledger | None = None

    def execute(self, context: Context) -> list[str]:
        ledger = self.submit(context)
        return ledger.job_names if ledger else []

    def submit(self, context: Context) -> Ledger | None:
        """Submit every shard not submitted yet; returns the ledger (None when the input has no rows)."""
        hook = self.hook
        if hook.vertex and not str(self.gcs_staging_uri or "").startswith("gs://"):
            raise AirflowFailException(f"{self.task_id}: a Vertex AI connection stages batch files in Cloud Storage: "
                                       "set gcs_staging_uri='gs://<bucket>/<prefix>'")
        self.preflight(hook)
        uploaded: list[str] = []
        if self.media_fields:  # rows, media and the budget are checked before any medium is uploaded
            self.check_budget(self.checked_estimate(), batch=True)
            uploaded = self.stage_media(hook, run_identity(context), self.gcs_staging_uri)
            if uploaded and not hook.vertex:
                self.log.warning("%d media files were uploaded to the Files API, which keeps files 48 h: rows of a "
                                 "job still unfinished then fail. Set deadline under 48 h to finish them online.",
                                 len(uploaded))
        with tempfile.TemporaryDirectory(prefix="gemini-batch-") as tmp:
            try:
                sharded = write_shards(self.requests(), Path(tmp), self.shard_limits,
                                       salt=f"{self.model}\n{self.shard_limits}")
            except InputError as exc:
                raise self.bad_input(exc) from None
            if sharded.requests == 0:
                self.log.warning("The input has no records: no batch job is created.")
                return None
            if not self.media_fields:
                self.check_budget(sharded.estimate, batch=True)
            self.log.info("Built %d requests in %d shard(s): %s", sharded.requests, len(sharded.shards),
                          [(s.requests, s.size_bytes) for s in sharded.shards])
            ledger, fresh = self._ledger_for(run_identity(context), sharded)
            ledger.estimated_cost_usd = self.estimated_cost_usd
            ledger.add_media(uploaded)
            self._ledger = ledger
            # A create may have gone through unrecorded: on a shard marked creating, and on any shard
            # of a later try (a fresh ledger may be another machine's first), look its job up by name,
            # all in one listing.
            look_up = not fresh or context["ti"].try_number > 1
            found = hook.find_batch_jobs(r.display_name for r in ledger.shards
                                         if not r.job and (r.status == CREATING or look_up))
            for shard, record in zip(sharded.shards, ledger.shards, strict=True):
                self._submit_shard(hook, ledger, record, shard.path, found.get(record.display_name))  # type: ignore[arg-type]
        GeminiBatchJobLink.persist(context, batch_jobs_url(ledger.job_names, hook.vertex_location))
        return ledger

    def _ledger_for(self, identity: str, sharded: ShardedInput) -> tuple[Ledger, bool]:
        """The ledger to go on with, and whether it is new."""
        old = self.load_ledger()
        if old is not None and old.identity == identity:
            if old.fingerprint == sharded.fingerprint:
                self.log.info("This task instance already submitted %s; reattaching.", old.job_names)
                return old, False
            if self.on_changed_input == "fail":
                raise AirflowFailException(
                    f"{self.task_id}: the input or request settings changed since this task instance created "
                    f"{old.job_names} (ledger {ledger_location(self.output_path)}); set on_changed_input='submit' "
                    "to submit anew, or delete the ledger"
                )
            self.log.warning("Input changed since %s were created; submitting anew and leaving them as they are.",
                             old.job_names)
        shards = len(sharded.shards)
        ledger = Ledger(identity=identity, fingerprint=sharded.fingerprint, shards=[
            ShardRecord(index=s.index, requests=s.requests,
                        display_name=display_name(identity, sharded.fingerprint, s.index, shards))
            for s in sharded.shards
        ])
        self.save_ledger(ledger)
        return ledger, True

    def _submit_shard(self, hook: GeminiHook, ledger: Ledger, record: ShardRecord, shard_path: Path,
                      found: types.BatchJob | None) -> None:
        """Reattach to the shard's job, or to ``found`` (its job looked up by display name), or create it."""
        if record.job:
            state = hook.get_job_status(record.job).state
            if state not in RESUBMIT_STATES:
                self.log.info("Shard %d: reattached to %s (%s).", record.index, record.job, state)
                return
            self.log.warning("Shard %d: %s ended %s; submitting it anew.", record.index, record.job, state)
            record.attempt += 1
            record.display_name = display_name(ledger.identity, ledger.fingerprint, record.index,
                                               len(ledger.shards), record.attempt)
            record.job, record.status, record.input_file = None, PENDING, None
        elif found is not None:
            self._record_job(ledger, record, str(found.name), "found by display name")
            return
        staged = self._staging(record) if hook.vertex else None
        if record.input_file is None:
            if staged:
                hook.upload_gcs(shard_path, f"{staged}.jsonl")
                record.input_file = f"{staged}.jsonl"
            else:
                record.input_file = str(hook.upload_file(shard_path, display_name=record.display_name).name)
        record.status = CREATING
        self.save_ledger(ledger)
        try:
            job = hook.create_batch_job(self.model, src=record.input_file, display_name=record.display_name,
                                        dest=f"{staged}-out" if staged else None, embeddings=self.embeddings)
        except Exception as exc:
            # A 5xx or a dropped connection may hide a job that was created: look before giving up.
            created = hook.find_batch_job(record.display_name) if is_retryable(exc) else None
            if created is None:
                raise
            job = created
        self._record_job(ledger, record, str(job.name), f"created from {record.input_file}")

    def _staging(self, record: ShardRecord) -> str:
        """The shard's Cloud Storage stem (Vertex AI): input ``<stem>.jsonl``, predictions under ``<stem>-out``."""
        tag = hashlib.sha256(record.display_name.encode()).hexdigest()[:16]
        return f"{str(self.gcs_staging_uri).rstrip('/')}/{tag}/shard-{record.index:05d}"

    def _record_job(self, ledger: Ledger, record: ShardRecord, job: str, how: str) -> None:
        record.job, record.status = job, CREATED
        if ledger.first_submitted_at is None:
            ledger.first_submitted_at = time.time()
        self.save_ledger(ledger)
        self.log.info("Shard %d (%d requests): %s, %s.", record.index, record.requests, job, how)

    def on_kill(self) -> None:
        """Cancel the jobs this task created that have not ended."""
        if self._ledger is None:
            return
        hook = self.hook

        def cancel(name: str) -> None:
            self.log.warning("Task killed: cancelling %s.", name)
            hook.cancel_batch_job(name)

        asyncio.run(cancel_unfinished(self._ledger.job_names, in_thread(hook.get_job_status), in_thread(cancel)))
