"""The ledger: versioned, and never a silent fresh start when it can't be read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemini_batch_provider.core.errors import LedgerError
from gemini_batch_provider.core.ledger import (
    CREATED,
    VERSION,
    Ledger,
    LedgerStore,
    ShardRecord,
    keys_location,
    ledger_location,
)
from gemini_batch_provider.core.shards import KEYS_FILE, ShardLimits, write_shards
from gemini_batch_provider.storage import Location


def _ledger() -> Ledger:
    return Ledger("dag/task/run/1", "fp", [ShardRecord(0, 3, "name 1/1 tag", "files/in", "batches/a", CREATED)],
                  first_submitted_at=1.5)


def test_a_ledger_round_trips_with_its_version():
    text = _ledger().to_json()
    assert json.loads(text)["version"] == VERSION == 2
    assert Ledger.from_json(text, "ledger.json") == _ledger()


@pytest.mark.parametrize("version", [None, 1])
def test_no_ledger_is_none_and_one_of_the_first_shape_has_no_keys_file(version):
    assert Ledger.from_json(None, "ledger.json") is None
    data = json.loads(_ledger().to_json())
    del data["keys_file"]  # version 1 had none
    if version is None:
        del data["version"]  # written before ledgers had one
    else:
        data["version"] = version
    assert Ledger.from_json(json.dumps(data), "ledger.json") == _ledger()


@pytest.mark.parametrize(("text", "why"), [
    ('{"identity": "x", "shar', "not a ledger this release can read (JSONDecodeError"),
    ('{"identity": "x"}', "not a ledger this release can read (KeyError"),
    ("[]", "not a ledger this release can read (TypeError"),
    (json.dumps({**json.loads(_ledger().to_json()), "version": 3}),
     "of version 3, and this release reads versions (1, 2)"),
])
def test_a_ledger_that_cant_be_read_is_an_error_naming_the_file(text, why):
    where = "s3://bkt/out/results.jsonl.gemini-batch.json"
    with pytest.raises(LedgerError, match="paying again") as raised:
        Ledger.from_json(text, where)
    assert where in str(raised.value) and why in str(raised.value)


def _store(folder: Path) -> LedgerStore:
    out = str(folder / "results.jsonl")
    return LedgerStore(Location(ledger_location(out), lambda: None), Location(keys_location(out), lambda: None))


def test_the_keys_file_gives_each_key_its_shard_as_the_shards_were_written(tmp_path):
    requests = [(f"k{i}", {"contents": [{"parts": [{"text": "x" * 50}]}]}) for i in range(7)]
    written = write_shards(requests, tmp_path, ShardLimits(max_requests=3))
    store, ledger = _store(tmp_path / "out"), _ledger()
    store.put_keys(tmp_path / KEYS_FILE, ledger)
    store.save(ledger)
    again = store.load()
    assert again.keys_file == str(tmp_path / "out" / "results.jsonl.gemini-batch-keys.jsonl")
    assert list(store.keys(again)) == [(f"k{i}", i // 3) for i in range(7)]
    assert [s.requests for s in written.shards] == [3, 3, 1]


def test_a_missing_or_moved_keys_file_is_a_ledger_error(tmp_path):
    store, ledger = _store(tmp_path), _ledger()
    ledger.keys_file = store.keys_file.url
    with pytest.raises(LedgerError, match="is missing; restore it"):
        list(store.keys(ledger))
    ledger.keys_file = "/elsewhere/results.jsonl.gemini-batch-keys.jsonl"
    with pytest.raises(LedgerError, match="move the two files together"):
        list(store.keys(ledger))
