"""The ledger: versioned, and never a silent fresh start when it can't be read."""

from __future__ import annotations

import json

import pytest

from gemini_batch_provider.core.errors import LedgerError
from gemini_batch_provider.core.ledger import CREATED, VERSION, Ledger, ShardRecord


def _ledger() -> Ledger:
    return Ledger("dag/task/run/1", "fp", [ShardRecord(0, 3, "name 1/1 tag", "files/in", "batches/a", CREATED)],
                  first_submitted_at=1.5)


def test_a_ledger_round_trips_with_its_version():
    text = _ledger().to_json()
    assert json.loads(text)["version"] == VERSION == 1
    assert Ledger.from_json(text, "ledger.json") == _ledger()


def test_no_ledger_is_none_and_one_without_a_version_is_of_the_first_shape():
    assert Ledger.from_json(None, "ledger.json") is None
    data = json.loads(_ledger().to_json())
    del data["version"]  # written before ledgers had one
    assert Ledger.from_json(json.dumps(data), "ledger.json") == _ledger()


@pytest.mark.parametrize(("text", "why"), [
    ('{"identity": "x", "shar', "not a ledger this release can read (JSONDecodeError"),
    ('{"identity": "x"}', "not a ledger this release can read (KeyError"),
    ("[]", "not a ledger this release can read (TypeError"),
    (json.dumps({**json.loads(_ledger().to_json()), "version": 2}), "of version 2, and this release reads version 1"),
])
def test_a_ledger_that_cant_be_read_is_an_error_naming_the_file(text, why):
    where = "s3://bkt/out/results.jsonl.gemini-batch.json"
    with pytest.raises(LedgerError, match="paying again") as raised:
        Ledger.from_json(text, where)
    assert where in str(raised.value) and why in str(raised.value)
