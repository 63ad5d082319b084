"""Before anything is uploaded or billed: a try's input read, its settings checked against the API
and storage, its media scanned, and its cost estimated against the budget.

Each function takes the plan and plain values and gives plain values back (``core.plan.RunInput``);
the operators call them in this order, the batch and the online paths alike, then estimate the
cost (``core.estimate``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from gemini_batch_provider.core.backend import BatchBackend
from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.ledger import keys_location
from gemini_batch_provider.core.media import MediaStager
from gemini_batch_provider.core.plan import BatchPlan, RunInput
from gemini_batch_provider.core.requests import blank_fields
from gemini_batch_provider.storage import Storage


def read_input(plan: BatchPlan, storage: Storage, scratch: Path) -> RunInput:
    """The plan's records, or its ``input_path`` (a remote one downloaded once, into ``scratch``);
    bad rows left out of its requests under ``on_bad_row="land"`` (``RunInput.refuse_bad_rows``)."""
    refuse = plan.on_bad_row == "land"
    if plan.records is not None:
        return RunInput(plan.records, plan.spec, refuse_bad_rows=refuse)
    source = storage.at(str(plan.input_path))
    if source.local is not None:
        return RunInput(str(source.local), plan.spec, refuse_bad_rows=refuse)
    copy = scratch / "input" / source.url.rsplit("/", 1)[-1]
    copy.parent.mkdir()
    source.download(copy)
    return RunInput(str(copy), plan.spec, refuse_bad_rows=refuse)


def check_apart(plan: BatchPlan, storage: Storage) -> None:
    """Refuse an ``output_path`` whose results or keys file would be written over the input: the
    run would destroy what it reads, and a retry would find nothing to read. (The ledger's name
    ends in ``.json``, which no input has.)

    :raises InputError: naming the two paths."""
    if plan.input_path is None:
        return
    source = storage.at(str(plan.input_path)).identity
    out = plan.output_path
    for what, url in (("output_path", out), ("the keys file beside output_path", keys_location(out))):
        if storage.at(url).identity == source:
            raise InputError(f"{what} is input_path ({plan.input_path}): the run would write over its own "
                             "input, and a retry would have none to read; give the results a path of their own")


def preflight(plan: BatchPlan, backend: BatchBackend, storage: Storage) -> None:
    """What is checked before anything is uploaded or billed, beyond the rows: that the results
    can be written where ``output_path`` says, apart from the input, and that the API has the
    model, which does the plan's method (``BatchBackend.check_plan``).

    :raises InputError: naming the setting and the fix."""
    check_apart(plan, storage)
    plan.check_model_id()
    storage.at(plan.output_path).check_writable("output_path")
    backend.check_plan(plan.model, plan.method, plan.embeddings)
    if plan.priority is not None and not backend.takes_priority:
        raise InputError("priority is a Gemini Developer API batch control, and this connection is Vertex AI, whose "
                         "batch jobs take none; remove priority, or use an API-key connection")


def prepare(plan: BatchPlan, backend: BatchBackend, storage: Storage, scratch: Path, log: logging.Logger) -> RunInput:
    """Check the settings against the API and storage (``preflight``), read the input, scan its media.

    :raises InputError: naming the setting, row or field and the fix."""
    preflight(plan, backend, storage)
    run_input = read_input(plan, storage, scratch)
    blank, first = blank_fields(run_input.records(), run_input.spec)
    if blank:
        log.warning("%d rows fill a template field with empty or whitespace-only text, sent as it is: %s%s. "
                    "Drop or fill them upstream if that is not meant.", blank, "; ".join(first),
                    "; ..." if blank > len(first) else "")
    return scan_media(plan, backend, run_input, scratch, log)


def scan_media(plan: BatchPlan, backend: BatchBackend, run_input: RunInput, scratch: Path,
               log: logging.Logger) -> RunInput:
    """``run_input`` with its media scanned and those behind URLs downloaded (into ``scratch``), not
    uploaded: its requests then carry them (``core.media``). As it is when the plan has no media.

    :raises InputError: bad media, naming row and field, before anything is uploaded."""
    media = plan.media
    if not media.fields:
        return run_input
    stager = MediaStager(media.fields, Path(tempfile.mkdtemp(prefix="media-", dir=scratch)),
                         inline_max_bytes=media.inline_max_bytes, max_bytes=media.max_bytes, backend=backend)
    try:
        stager.scan(run_input.records())
        asyncio.run(stager.fetch())
    except InputError:
        shutil.rmtree(stager.folder, ignore_errors=True)
        raise
    log.info("Media: %d distinct, %d over %d bytes (uploaded, once each), the rest inline.", len(stager.media),
             sum(m.size > media.inline_max_bytes for m in stager.media.values()), media.inline_max_bytes)
    return dataclasses.replace(run_input, spec=dataclasses.replace(run_input.spec, media=stager))


def stage_media(run_input: RunInput) -> list[str]:
    """Upload the media too large to go inline (once per content, through the backend the media
    were scanned with); the URIs this try uploaded."""
    stager = run_input.spec.media
    if stager is None or stager.staged:
        return []
    asyncio.run(stager.stage())
    return stager.uploaded


def drop_media(plan: BatchPlan, backend: BatchBackend, run_input: RunInput, log: logging.Logger,
               uris: Iterable[str] = ()) -> None:
    """Remove the local downloads, and the uploaded ``uris`` unless the plan keeps them."""
    if run_input.spec.media is not None:
        shutil.rmtree(run_input.spec.media.folder, ignore_errors=True)
    uris = list(uris)
    if uris and not plan.media.keep_files:
        for uri in uris:
            backend.delete(uri)
        log.info("Deleted %d uploaded media files.", len(uris))
