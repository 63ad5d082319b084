"""Property-based: whatever a record's text and key, the request round-trips through a batch input
line and the key survives the join of the results; what can't be sent is refused naming the row."""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.limits import ShardLimits
from gemini_batch_provider.core.requests import RequestSpec, build_requests
from gemini_batch_provider.core.results import ResultsWriter, join_results
from gemini_batch_provider.core.shards import write_shards

SPEC = RequestSpec(prompt_template="{text}", key_field="id")


def _surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@settings(max_examples=300, deadline=None)
@given(text=st.text(), key=st.one_of(st.text(min_size=1), st.integers()))
def test_any_text_and_key_round_trip_or_are_refused_naming_the_row(text, key):
    try:
        [(built_key, request)] = list(build_requests([{"id": key, "text": text}], SPEC))
    except InputError as exc:
        assert str(exc).startswith(("row 0: ", f"row 0 (key {str(key)!r}): "))
        blank_key = isinstance(key, str) and not key.strip()
        assert not text.strip() or _surrogate(text) or _surrogate(str(key)) or blank_key
        return
    assert built_key == str(key) and text.strip() and not _surrogate(text)
    with tempfile.TemporaryDirectory() as folder:
        [shard] = write_shards([(built_key, request)], Path(folder), ShardLimits()).shards
        line = orjson.loads(shard.path.read_bytes())
        assert line["key"] == str(key)
        assert line["request"]["contents"][0]["parts"][0]["text"] == text  # byte for byte
        # The answer for that key lands under that key, with the text it carried.
        answer = {"key": line["key"], "response": {"candidates": [{"content": {"parts": [{"text": text}]}}]}}
        writer = ResultsWriter(Path(folder) / "results.jsonl")
        skipped, _ = join_results([(built_key, 0)], [orjson.dumps(answer)], writer)
        writer.close()
        [row] = [orjson.loads(raw) for raw in (Path(folder) / "results.jsonl").read_bytes().splitlines()]
    assert skipped == {"unknown_keys": 0, "duplicate_keys": 0, "unreadable_lines": 0}
    assert row["key"] == str(key) and row["status"] == "succeeded" and row["text"] == text


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.text(min_size=1).filter(lambda k: not _surrogate(k)), min_size=1, max_size=30))
def test_every_key_lands_once_whatever_the_output_holds(keys):
    unique = list(dict.fromkeys(keys))
    with tempfile.TemporaryDirectory() as folder:
        writer = ResultsWriter(Path(folder) / "results.jsonl")
        # An output answering every other key, twice, plus a key nobody asked for.
        lines = [orjson.dumps({"key": k, "error": {"code": 500, "message": "x", "status": "INTERNAL"}})
                 for k in unique[::2] * 2] + [orjson.dumps({"key": "\x00not-asked"})]
        join_results([(k, 0) for k in unique], lines, writer)
        writer.close()
        rows = [orjson.loads(raw) for raw in (Path(folder) / "results.jsonl").read_bytes().splitlines()]
    assert sorted(r["key"] for r in rows) == sorted(unique)
    assert {r["key"] for r in rows if r["status"] == "missing"} == set(unique[1::2])


# Templates made of literal text (braces included), fields with any conversion and format spec, and
# records whose values may be of any JSON type, or missing: each input is either refused with a
# message naming the template, or naming a row, or gives exactly one request per record, in order.
_NAMES = st.sampled_from(["text", "n", "x"])
_SEGMENT = st.one_of(
    st.text(alphabet="ab {}:!.-_0\n", max_size=6),
    st.builds(lambda name, conversion, spec: "{" + name + conversion + spec + "}", _NAMES,
              st.sampled_from(["", "!r", "!s", "!a", "!z", "!"]),
              st.sampled_from(["", ":d", ":>5", ":,", ":.2f", ":{n}", ":x"])),
)
_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                   st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
_RECORD = st.dictionaries(st.sampled_from(["id", "text", "n", "x"]), _VALUE, max_size=4)


@settings(max_examples=400, deadline=None)
@given(template=st.lists(_SEGMENT, min_size=1, max_size=5).map("".join), records=st.lists(_RECORD, max_size=5))
def test_any_template_and_records_give_one_request_per_record_or_a_refusal_naming_where(template, records):
    try:
        spec = RequestSpec(prompt_template=template, key_field="id")
    except InputError as exc:
        assert str(exc).startswith("prompt_template")
        return
    built = []
    try:
        built.extend(build_requests(records, spec))
    except InputError as exc:
        assert str(exc).startswith((f"row {len(built)}: ", f"row {len(built)} (key "))
        return
    assert [key for key, _ in built] == [str(record["id"]) for record in records]
    assert len({key for key, _ in built}) == len(records)
