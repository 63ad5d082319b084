"""The answer store and its index (``core.answers``), on a real folder through the provider's storage."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
from pathlib import Path

import pytest

from gemini_batch_provider.core.answers import AnswerIndex, AnswerStore
from gemini_batch_provider.core.requests import request_digest

LOG = logging.getLogger(__name__)


def _store(folder: Path) -> AnswerStore:
    from gemini_batch_provider.storage import Location

    folder.mkdir(exist_ok=True)
    return AnswerStore(Location(str(folder), lambda: None))


def _digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def _row(label: str, status: str = "succeeded", at: str = "2026-12-01T00:00:00+00:00", text: str = "x") -> dict:
    """A results row whose key is ``label`` and whose request digest is made from it."""
    return {"key": label, "status": status, "path": "batch", "text": text, "request_digest": _digest(label),
            "answered_at": at, "reused_from": None}


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _keys(store: AnswerStore, scratch: Path) -> set[str]:
    """The keys of the answers the store holds."""
    with AnswerIndex() as index:
        store.read_into(index, scratch, LOG)
        return {json.loads(row)["key"] for row in index.rows()}


def test_the_digest_is_the_request_sent_whatever_the_order_of_its_fields():
    one = {"contents": [{"parts": [{"text": "a"}], "role": "user"}], "generationConfig": {"temperature": 0}}
    same = {"generationConfig": {"temperature": 0}, "contents": [{"role": "user", "parts": [{"text": "a"}]}]}
    assert request_digest("m", one) == request_digest("m", same)
    assert request_digest("m", one) != request_digest("other", one)
    assert request_digest("m", one) != request_digest("m", {**one, "generationConfig": {"temperature": 1}})


def test_only_succeeded_answers_count_and_the_newest_answer_of_a_digest_wins(tmp_path):
    lines = [json.dumps(r).encode() for r in (
        _row("d1", text="old"), _row("d1", at="2026-12-02T00:00:00+00:00", text="new"), _row("d1", text="older"),
        _row("d2", status="failed"), _row("d3", status="invalid_output"), {"status": "succeeded"},
        {**_row("d4"), "usage": "many"}, {**_row("d5"), "path": "elsewhere"}, {**_row("d6"), "text": 7},
        {**_row("d7"), "request_digest": "not-a-digest"})] + [b"{cut"]
    with AnswerIndex() as index:
        assert index.add_lines(lines) == 3
        found = index.get_many([_digest(f"d{n}") for n in range(1, 7)])
        assert set(found) == {_digest("d1")} and json.loads(found[_digest("d1")])["text"] == "new"
        assert [json.loads(row)["text"] for row in index.rows()] == ["new"]


def test_answers_over_the_maximum_age_are_left_out():
    with AnswerIndex(max_age_s=3600) as index:
        index.add_lines([json.dumps(_row("old", at="2020-01-01T00:00:00+00:00")).encode()])
        assert index.get_many([_digest("old")]) == {}


def _append_parts(folder: str, writer: int, parts: int) -> None:
    store = _store(Path(folder))
    for part in range(parts):
        rows = [_row(f"w{writer}-p{part}-r{row}") for row in range(50)]
        source = _write(Path(folder).parent / f"src-{writer}-{part}.jsonl", rows)
        store.append(source)


def test_writers_at_once_and_a_compaction_between_them_lose_no_answer(tmp_path):
    folder = tmp_path / "store"
    store = _store(folder)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_append_parts, args=(str(folder), writer, 10)) for writer in range(2)]
    for process in writers:
        process.start()
    compactions = 0
    while any(process.is_alive() for process in writers):  # compact while they write, as often as it can
        store.compact(tmp_path, LOG)
        compactions += 1
    for process in writers:
        process.join()
        assert process.exitcode == 0
    expected = {f"w{w}-p{p}-r{r}" for w in range(2) for p in range(10) for r in range(50)}
    assert _keys(store, tmp_path) == expected and compactions > 0
    merged, kept = store.compact(tmp_path, LOG)
    assert merged >= 1
    assert kept == len(expected) == 1000 and len(store.parts()) == 1
    assert _keys(store, tmp_path) == expected


def test_a_part_cut_short_by_a_killed_writer_is_never_read(tmp_path):
    folder = tmp_path / "store"
    store = _store(folder)
    store.append(_write(tmp_path / "whole.jsonl", [_row("whole")]))
    # What a writer killed in the middle of its put leaves: the part under its temporary name.
    (folder / "answers-20261205T000000-0123456789abcdef.jsonl.part").write_text(json.dumps(_row("half"))[:30])
    assert store.parts() == [next(folder.glob("answers-*.jsonl")).name]
    assert _keys(store, tmp_path) == {"whole"}
    store.compact(tmp_path, LOG)
    assert _keys(store, tmp_path) == {"whole"}


def test_a_part_compacted_away_after_it_was_listed_is_passed_over(tmp_path):
    store = _store(tmp_path / "store")
    store.append(_write(tmp_path / "a.jsonl", [_row("a")]))
    listed = store.parts

    def listed_then_gone():
        names = listed()
        (tmp_path / "store" / names[0]).unlink()
        return names

    store.parts = listed_then_gone
    with AnswerIndex() as index:
        assert store.read_into(index, tmp_path, LOG) == 0


@pytest.mark.parametrize("rows", [0, 3])
def test_append_adds_a_part_only_when_there_are_answers(tmp_path, rows):
    store = _store(tmp_path / "store")
    name = store.append(_write(tmp_path / "new.jsonl", [_row(f"d{i}") for i in range(rows)]))
    assert (name is None) == (rows == 0) and len(store.parts()) == (1 if rows else 0)


def _reused(key: str) -> dict:
    return {**_row(key), "path": "reused", "reused_from": "batch"}


def test_refused_rows_are_checked_with_the_reused_ones_and_leave_the_fingerprint_alone(tmp_path):
    from gemini_batch_provider.core.answers import check_reused_rows, refused_row
    from gemini_batch_provider.core.keys import KeyIndex

    alone, mixed = tmp_path / "alone.jsonl", tmp_path / "mixed.jsonl"
    alone.write_text(json.dumps(_reused("a")) + "\n")
    mixed.write_text(json.dumps(_reused("a")) + "\n" + json.dumps(refused_row("b", "row 1 (key 'b'): bad")) + "\n")
    with KeyIndex() as first, KeyIndex() as second:
        assert check_reused_rows(alone, 1, "alone", first) == check_reused_rows(mixed, 2, "mixed", second)


@pytest.mark.parametrize(("lines", "expected", "why"), [
    ([_reused("a"), _reused("b")], 3, "it holds 2 rows where the ledger records 3"),
    ([_reused("a"), _reused("a")], 2, "line 2 repeats key 'a'"),
    ([_reused("a"), _row("b")], 2, "line 2 is neither a reused nor a refused results row"),
    ([_reused("a"), {**_row("b"), "path": "refused"}], 2, "line 2 is neither a reused nor a refused results row"),
    ([_reused("a"), "{cut"], 2, "it can't be read"),
])
def test_a_reused_rows_file_that_does_not_match_its_ledger_is_refused(tmp_path, lines, expected, why):
    from gemini_batch_provider.core.answers import check_reused_rows
    from gemini_batch_provider.core.errors import LedgerError
    from gemini_batch_provider.core.keys import KeyIndex

    path = tmp_path / "reused.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    with KeyIndex() as keys, pytest.raises(LedgerError, match=f"reused rows file /x/out.jsonl.gemini-batch-reused"
                                                              f".jsonl does not match its ledger: {why}"):
        check_reused_rows(path, expected, "/x/out.jsonl.gemini-batch-reused.jsonl", keys)


def test_a_recorded_reuse_sends_the_rows_it_does_not_hold_and_keeps_its_fingerprint(tmp_path):
    from gemini_batch_provider.core.answers import reuse_fingerprint, reused_from_file
    from gemini_batch_provider.core.plan import RunInput
    from gemini_batch_provider.core.requests import RequestSpec

    spec = RequestSpec("Summarize: {text}", key_field="id")
    records = tuple({"id": key, "text": f"Text {key}."} for key in ("a", "b", "c"))
    path = _write(tmp_path / "reused.jsonl", [_reused("a"), _reused("c")])
    reuse = reused_from_file(path, 2, "where", RunInput(records, spec), tmp_path)
    assert (reuse.rows, reuse.sent) == (2, 1)
    assert [key for key, _ in RunInput(records, spec, built=reuse.to_send).requests()] == ["b"]
    assert reuse.fingerprint == reuse_fingerprint([("a", _digest("a")), ("c", _digest("c"))])
