"""The ledger: versioned, and never a silent fresh start when it can't be read."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from gemini_batch_provider.core.errors import LedgerError
from gemini_batch_provider.core.jobs import JobStatus
from gemini_batch_provider.core.ledger import (
    CREATED,
    VERSION,
    Ledger,
    LedgerStore,
    ShardRecord,
    keys_location,
    ledger_location,
)
from gemini_batch_provider.core.limits import ShardLimits
from gemini_batch_provider.core.shards import KEYS_FILE, write_shards
from gemini_batch_provider.storage import Location


def _ledger() -> Ledger:
    return Ledger("dag/task/run/1", "fp", [ShardRecord(0, 3, "name 1/1 tag", "files/in", "batches/a", CREATED)],
                  first_submitted_at=1.5)


def test_a_ledger_round_trips_with_its_version():
    text = _ledger().to_json()
    assert json.loads(text)["version"] == VERSION == 4
    assert Ledger.from_json(text, "ledger.json") == _ledger()


def test_a_version_3_ledger_reads_as_one_whose_shards_count_no_tokens():
    data = json.loads(_ledger().to_json())
    for shard in data["shards"]:
        del shard["tokens"]
    data["version"] = 3
    ledger = Ledger.from_json(json.dumps(data), "ledger.json")
    assert ledger == _ledger() and ledger.shards[0].tokens == 0 and ledger.waiting == []


def test_a_version_2_ledger_reads_as_one_that_reused_no_row():
    data = json.loads(_ledger().to_json())
    del data["reused_file"], data["reused_rows"]
    data["version"] = 2
    assert Ledger.from_json(json.dumps(data), "ledger.json") == _ledger()


@pytest.mark.parametrize(("reused_file", "reused_rows"), [("x.jsonl", 0), (None, 3), ("x.jsonl", -1), ("x", True)])
def test_a_ledger_whose_reused_rows_do_not_agree_is_an_error(reused_file, reused_rows):
    data = {**json.loads(_ledger().to_json()), "reused_file": reused_file, "reused_rows": reused_rows}
    with pytest.raises(LedgerError, match="reused_file and reused_rows do not agree"):
        Ledger.from_json(json.dumps(data), "ledger.json")


@pytest.mark.parametrize("version", [None, 1])
def test_no_ledger_is_none_and_one_of_the_first_shape_has_no_keys_file(version):
    assert Ledger.from_json(None, "ledger.json") is None
    data = json.loads(_ledger().to_json())
    del data["keys_file"], data["reused_file"], data["reused_rows"]  # version 1 had none
    if version is None:
        del data["version"]  # written before ledgers had one
    else:
        data["version"] = version
    assert Ledger.from_json(json.dumps(data), "ledger.json") == _ledger()


@pytest.mark.parametrize(("text", "why"), [
    ('{"identity": "x", "shar', "not a ledger this release can read (JSONDecodeError"),
    ('{"identity": "x"}', "not a ledger this release can read (KeyError"),
    ("[]", "not a ledger this release can read (TypeError"),
    (json.dumps({**json.loads(_ledger().to_json()), "version": 5}),
     "of version 5, and this release reads versions (1, 2, 3, 4)"),
    (json.dumps({**json.loads(_ledger().to_json()), "shards": []}), "it records no shard"),
    (json.dumps({**json.loads(_ledger().to_json()), "shards": [{**asdict(_ledger().shards[0]), "index": 1}]}),
     "its shard at position 0 says it is shard 1"),
    (json.dumps({**json.loads(_ledger().to_json()), "shards": [{**asdict(_ledger().shards[0]), "requests": "3"}]}),
     "shard 0 records '3' requests, not a count"),
    (json.dumps({**json.loads(_ledger().to_json()),
                 "shards": [{**asdict(_ledger().shards[0]), "job": "../../v1beta/files"}]}),
     "shard 0 names '../../v1beta/files', which is no batch job's name"),
    (json.dumps({**json.loads(_ledger().to_json()), "media_files": 3}), "its media_files is not a list of names"),
    (json.dumps({**json.loads(_ledger().to_json()), "estimated_cost_usd": "0.5"}),
     "its first_submitted_at or estimated_cost_usd is not a number"),
])
def test_a_ledger_that_cant_be_read_is_an_error_naming_the_file(text, why):
    where = "s3://bkt/out/results.jsonl.gemini-batch.json"
    with pytest.raises(LedgerError, match="paying again") as raised:
        Ledger.from_json(text, where)
    assert where in str(raised.value) and why in str(raised.value)


def _store(folder: Path) -> LedgerStore:
    out = str(folder / "results.jsonl")
    return LedgerStore(Location(ledger_location(out), lambda: None), Location(keys_location(out), lambda: None))


def _written(tmp_path: Path, rows: int = 7) -> tuple[LedgerStore, Ledger]:
    """A keys file of ``rows`` keys over shards of 3, kept beside a ledger that records those shards."""
    requests = [(f"k{i}", {"contents": [{"parts": [{"text": "x" * 50}]}]}) for i in range(rows)]
    written = write_shards(requests, tmp_path, ShardLimits(max_requests=3))
    ledger = Ledger("dag/task/run/1", written.fingerprint, [
        ShardRecord(s.index, s.requests, f"name {s.index + 1}/{len(written.shards)} tag") for s in written.shards])
    store = _store(tmp_path / "out")
    store.put_keys(tmp_path / KEYS_FILE, ledger)
    store.save(ledger)
    return store, store.load()


def test_the_keys_file_gives_each_key_its_shard_as_the_shards_were_written(tmp_path):
    store, ledger = _written(tmp_path)
    assert ledger.keys_file == str(tmp_path / "out" / "results.jsonl.gemini-batch-keys.jsonl")
    assert list(store.keys(ledger)) == [(f"k{i}", i // 3) for i in range(7)]
    assert [s.requests for s in ledger.shards] == [3, 3, 1]


@pytest.mark.parametrize(("damage", "why"), [
    (lambda lines: lines[:4], r"it holds \[3, 1, 0\] keys per shard where the shards had \[3, 3, 1\] requests"),
    (lambda lines: [*lines[:5], lines[0]], "line 6 repeats the key 'k0'"),
    (lambda lines: [*lines, '["k-extra", 2]'], r"it holds \[3, 3, 2\] keys per shard"),
    (lambda lines: [*lines[:3], lines[3][:5]], r"line 4 is not a \[key, shard\] pair"),
    (lambda lines: [*lines[:6], '["k6", 3]'], "line 7 names shard 3 of key 'k6'; there are 3 shards"),
])
def test_a_keys_file_that_does_not_match_its_ledger_is_a_ledger_error_naming_both(tmp_path, damage, why):
    store, ledger = _written(tmp_path)
    keys = Path(ledger.keys_file)
    keys.write_text("".join(line + "\n" for line in damage(keys.read_text().splitlines())))
    with pytest.raises(LedgerError, match=why) as raised:
        list(store.keys(ledger))
    assert str(keys) in str(raised.value) and store.ledger.url in str(raised.value)


class Answering:
    """A backend whose one poll answers ``status`` (None: it must not be asked)."""

    def __init__(self, status: JobStatus | None) -> None:
        self.status = status

    def job_status(self, name: str) -> JobStatus:
        assert self.status is not None, "no job to ask of the API"
        return self.status


def test_a_recorded_job_is_checked_against_its_shard(tmp_path):
    store, ledger = _written(tmp_path)
    record = ledger.shards[1]
    with pytest.raises(LedgerError, match="records no job for shard 1"):
        store.recorded_job(record, Answering(None))
    record.job = "batches/b"
    own = JobStatus("batches/b", "JOB_STATE_RUNNING", display_name=record.display_name, requests=3)
    assert store.recorded_job(record, Answering(own)) is own
    not_counted_yet = JobStatus("batches/b", "JOB_STATE_PENDING", display_name=record.display_name)
    assert store.recorded_job(record, Answering(not_counted_yet)) is not_counted_yet
    for other in (JobStatus("batches/b", "JOB_STATE_SUCCEEDED", display_name="name 2/3 other", requests=3),
                  JobStatus("batches/b", "JOB_STATE_SUCCEEDED", display_name=record.display_name, requests=4)):
        with pytest.raises(LedgerError, match=r"says shard 1 .* is batches/b, but that job is .*another input's job"):
            store.recorded_job(record, Answering(other))


def test_a_recorded_job_the_api_no_longer_knows_is_a_ledger_error_saying_what_to_do(tmp_path, gemini_conn):
    from gemini_batch_provider.hooks.gemini import GeminiHook

    store, ledger = _written(tmp_path)
    record = ledger.shards[0]
    record.job = "batches/gone"
    with pytest.raises(LedgerError, match=r"batches/gone, which the API no longer knows .*delete it .* to submit"):
        store.recorded_job(record, GeminiHook().backend)


def test_a_missing_or_moved_keys_file_is_a_ledger_error(tmp_path):
    store, ledger = _store(tmp_path), _ledger()
    ledger.keys_file = store.keys_file.url
    with pytest.raises(LedgerError, match="is missing; restore it"):
        list(store.keys(ledger))
    ledger.keys_file = "/elsewhere/results.jsonl.gemini-batch-keys.jsonl"
    with pytest.raises(LedgerError, match="move the two files together"):
        list(store.keys(ledger))
