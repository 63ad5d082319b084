"""The batch path of one try: a ``TaskRun`` through ``core.submit`` and ``core.land``.

What the core can't do alone lives here: media are checked and uploaded before the submit (and
the budget checked on their estimate), rows that go online after landing are run through the
task's online engine, and uploaded files are removed once their results have landed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gemini_batch_provider.core.cost import Estimate
from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.land import Rerun, land
from gemini_batch_provider.core.ledger import Ledger
from gemini_batch_provider.core.online import OnlineSettings
from gemini_batch_provider.core.submit import Submission, submit
from gemini_batch_provider.core.vocabulary import RowPath
from gemini_batch_provider.operators.run import TaskRun


def submit_batch(run: TaskRun, how: Submission) -> Ledger | None:
    """Check everything, upload the media, then submit (``core.submit``); the ledger, None for no rows.

    :raises InputError: bad input or settings, before anything is uploaded.
    """
    hook = run.hook
    if hook.vertex and not str(how.staging_uri or "").startswith("gs://"):
        raise InputError("a Vertex AI connection stages batch files in Cloud Storage: set "
                         "gcs_staging_uri='gs://<bucket>/<prefix>'")
    run.preflight()
    media = bool(run.plan.media.fields)
    estimated = None
    if media:  # rows, media and the budget are checked before any medium is uploaded
        estimated = run.check_budget(run.checked_estimate(), batch=True)
        uploaded = run.stage_media(how.staging_uri)
        if uploaded and not hook.vertex:
            run.log.warning("%d media files were uploaded to the Files API, which keeps files 48 h: rows of a job "
                            "still unfinished then fail. Set deadline under 48 h to finish them online.", len(uploaded))
        how = dataclasses.replace(how, media_files=tuple(uploaded))

    def check_budget(found: Estimate) -> float | None:  # a media run's was checked above, on the same requests
        return estimated if media else run.check_budget(found, batch=True)

    return submit(run.plan, run.requests(), hook, run.store, how, check_budget, run.log)


def land_batch(run: TaskRun, jobs: list[dict[str, Any]], rerun: Rerun, online: OnlineSettings,
               delete_input_files: bool, staging_uri: str | None = None) -> dict[str, Any]:
    """Land ended jobs (``core.land``) into the results file, the rows ``rerun`` picks online; the summary."""
    writer = run.results_writer()
    ledger = run.store.load()
    try:
        again = land(jobs, run.keys_by_shard(jobs, ledger), run.hook, writer, rerun, run.log, run.scratch)
        if again:
            run.log.info("%d rows go online (deadline passed, or retryable errors).", len(again))
            # A resumed task builds its media parts again (and finds what it uploaded before).
            uploaded = run.stage_media(staging_uri)
            if ledger is not None and ledger.add_media(uploaded):
                run.store.save(ledger)
            run.run_online(writer, ((k, r) for k, r in run.requests() if k in again), len(again), online)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    run.drop_media()  # the local downloads; uploaded media go once the task succeeds (delete_media_files)
    if ledger is not None:
        if run.estimated_cost_usd is None:  # a task resumed after deferral: the estimate of its submit
            run.estimated_cost_usd = ledger.estimated_cost_usd
        if delete_input_files:
            for shard in ledger.shards:
                if shard.input_file:
                    run.hook.delete_api_file(shard.input_file)
                    shard.input_file = None
            run.store.save(ledger)
    path = RowPath.BATCH_AND_ONLINE if again else RowPath.BATCH
    return run.summary(writer, sum(writer.counts.values()), path, [job["name"] for job in jobs])


def delete_media_files(run: TaskRun) -> None:
    """Once the task has succeeded: delete the media uploaded for its requests (unless the plan
    keeps them). A failing task keeps them, so that a retry finds them and its requests, hence the
    ledger's fingerprint, stay the same."""
    ledger = run.store.load()
    if ledger is None or not ledger.media_files or run.plan.media.keep_files:
        return
    run.drop_media(ledger.media_files)
    ledger.media_files = []
    run.store.save(ledger)
