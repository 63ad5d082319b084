"""The emulator's settings (``EmulatorConfig``) and the state its handlers share (``State``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from .batches import BatchRunner, RowErrors
from .faults import FaultConfig, Faults
from .quota import Quota
from .store import Store
from .tiers import TierConfig, Tiers
from .vertex import VertexRunner


@dataclass
class EmulatorConfig:
    """How the emulator behaves.

    ``api_keys``: the keys it accepts; empty means any non-empty key. ``batch_pending_s`` and
    ``batch_running_s``: seconds a batch job spends in PENDING and RUNNING. ``data_dir``: where file
    contents are kept (a temporary folder when None). ``page_size``: the default list page size.
    ``rpm``/``tpm``: requests and tokens per minute per key and model for ``generateContent``
    (None: unlimited), enforced over a sliding ``quota_window_s``; over quota it answers 429
    RESOURCE_EXHAUSTED with ``RetryInfo`` and ``Retry-After``. ``faults``: latency and injected
    faults of ``generateContent``. ``batch_row_errors``: rows of batch jobs answered with an error.
    ``batch_outcome``: how new batch jobs end (``succeed``, ``fail``, ``expire``, ``stall``).
    ``batch_output_fault``: what befalls a batch job's output file (``none``, ``malformed``: some
    lines are not JSON, ``truncated``: it ends a third of the way short, in the middle of a line).
    ``max_enqueued_tokens``: estimated tokens of a model's unfinished batch jobs at most (None: no
    limit); ``max_concurrent_jobs``: unfinished batch jobs at most (None: no limit);
    ``max_file_bytes``: the largest upload (2 GB, as the Files API). ``gcs_endpoint``: the Cloud
    Storage (emulator) that Vertex AI batch prediction jobs read from and write to.
    ``tiers``: Flex's latency and shed rate (``emulator.tiers``). ``batch_get_latency_s``: seconds a
    batch job's GET takes, as the round trip to the live API does (0: at once).
    """

    api_keys: frozenset[str] = frozenset()
    batch_pending_s: float = 1.0
    batch_running_s: float = 2.0
    batch_get_latency_s: float = 0.0
    data_dir: Path | None = None
    page_size: int = 50
    rpm: int | None = None
    tpm: int | None = None
    quota_window_s: float = 60.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    batch_row_errors: RowErrors = field(default_factory=RowErrors)
    batch_outcome: str = "succeed"
    batch_output_fault: str = "none"
    max_enqueued_tokens: int | None = None
    max_concurrent_jobs: int | None = None
    max_file_bytes: int = 2 * 1024**3
    gcs_endpoint: str | None = None
    tiers: TierConfig = field(default_factory=TierConfig)


@dataclass
class State:
    config: EmulatorConfig
    store: Store
    batches: BatchRunner
    base_url: str
    quota: Quota
    faults: Faults
    tiers: Tiers
    vertex: VertexRunner
    counters: Counter[str] = field(default_factory=Counter)
    _tmp: Any = field(default=None, repr=False)

    def read_file(self, uri: str) -> bytes:
        """A ``fileData`` part's content: a ``gs://`` object (Vertex AI), else a Files API file."""
        return self.vertex.read_gcs(uri) if uri.startswith("gs://") else self.store.read_file(uri)


STATE = web.AppKey("state", State)
