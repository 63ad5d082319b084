"""Batch output parsed and joined back by key: exactly one results row per input key."""

from __future__ import annotations

import json

import pytest

from gemini_batch_provider.core.results import ResultsWriter, join_results, parse_output_line


def _response(text, finish="STOP"):
    return {
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": finish}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
    }


def _lines(*items):
    return [(json.dumps(i) if not isinstance(i, str) else i).encode() for i in items]


def _land(tmp_path, keys, lines):
    writer = ResultsWriter(tmp_path / "out" / "results.jsonl")
    skipped, again = join_results([(key, 0) for key in keys], lines, writer)
    assert again == set()
    writer.close()
    rows = [json.loads(line) for line in writer.path.read_text().splitlines()]
    return rows, skipped, writer


def test_every_key_lands_exactly_once(tmp_path):
    lines = _lines(
        {"key": "b", "response": _response("B.")},
        {"key": "a", "error": {"code": 400, "message": "bad request", "status": "INVALID_ARGUMENT"}},
        {"key": "b", "response": _response("B again.")},  # repeated: the first wins
        {"key": "zzz", "response": _response("unknown key")},
        "{truncated",
        "",
    )
    rows, skipped, writer = _land(tmp_path, ["a", "b", "c"], lines)
    assert [r["key"] for r in rows] == ["b", "a", "c"]
    assert rows[0] == {
        "key": "b", "status": "succeeded", "path": "batch", "text": "B.", "parsed": None, "embedding": None,
        "usage": {"prompt_token_count": 3, "candidates_token_count": 2, "total_token_count": 5}, "error": None,
        "finish_reason": "STOP", "thoughts": None, "images": None, "request_digest": None,
        "answered_at": rows[0]["answered_at"], "reused_from": None,
    }
    assert rows[1]["status"] == "failed" and rows[1]["error"] == {
        "code": 400, "message": "bad request", "status": "INVALID_ARGUMENT",
    }
    assert rows[2]["status"] == "missing"
    assert skipped == {"unknown_keys": 1, "duplicate_keys": 1, "unreadable_lines": 1}
    assert dict(writer.counts) == {"succeeded": 1, "failed": 1, "invalid_output": 0, "missing": 1, "expired": 0,
                                   "cancelled": 0}
    assert writer.usage["total_token_count"] == 5


def test_a_response_without_text_is_a_failed_row():
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}}
    row = parse_output_line({"key": "k", "response": blocked})
    assert row["status"] == "failed" and "SAFETY" in row["error"]["message"]
    assert row["usage"] == {"prompt_token_count": 4}


def test_unreadable_response_is_a_failed_row():
    row = parse_output_line({"key": "k", "response": {"candidates": "nope"}})
    assert row["status"] == "failed" and row["error"]["status"] == "INVALID_RESPONSE"


def test_results_are_written_atomically(tmp_path):
    writer = ResultsWriter(tmp_path / "results.jsonl")
    writer.write({"key": "a", "status": "missing", "path": "batch", "text": None, "parsed": None, "usage": None,
                  "error": None})
    assert not writer.path.exists()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("count", [0, 1, 250])
def test_counts_add_up_to_the_input(tmp_path, count):
    keys = [str(i) for i in range(count)]
    lines = _lines(*({"key": k, "response": _response(f"row {k}.")} for k in keys[::2]))
    rows, _, writer = _land(tmp_path, keys, lines)
    assert sorted(r["key"] for r in rows) == sorted(keys)
    assert sum(writer.counts.values()) == count


def test_rows_to_rerun_are_handed_back_not_written(tmp_path):
    lines = _lines(
        {"key": "a", "response": _response("A.")},
        {"key": "b", "error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}},
        {"key": "c", "error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}},
    )
    writer = ResultsWriter(tmp_path / "results.jsonl")
    retryable = lambda row: row["status"] == "missing" or (row["error"] or {}).get("code") == 503  # noqa: E731
    _, again = join_results([(k, 0) for k in "abcd"], lines, writer, rerun=retryable)
    writer.close()
    rows = [json.loads(line) for line in writer.path.read_text().splitlines()]
    assert again == {"b", "d"}
    assert [(r["key"], r["status"]) for r in rows] == [("a", "succeeded"), ("c", "failed")]


def test_keys_without_an_answer_get_the_status_their_job_ending_gives(tmp_path):
    writer = ResultsWriter(tmp_path / "results.jsonl")
    why = {1: ("expired", "batches/2 ended JOB_STATE_EXPIRED"), 2: ("cancelled", "batches/3 cancelled")}
    keys = [("a", 0), ("b", 1), ("c", 2)]  # one job (shard) each
    join_results(keys, _lines({"key": "a", "response": _response("A.")}), writer, why_missing=lambda _k, s: why[s])
    writer.close()
    rows = {r["key"]: r for r in map(json.loads, writer.path.read_text().splitlines())}
    assert rows["a"]["status"] == "succeeded"
    assert rows["b"]["status"] == "expired" and rows["b"]["error"]["message"] == "batches/2 ended JOB_STATE_EXPIRED"
    assert rows["c"]["status"] == "cancelled" and rows["c"]["error"]["status"] == "CANCELLED"
    assert writer.counts["expired"] == writer.counts["cancelled"] == 1


@pytest.mark.parametrize("response", [
    _response("Plain."),
    {**_response("x"), "candidates": [{"content": {"parts": [{"text": "A", "thought": True}, {"text": "B"},
                                                             {"text": "C"}], "role": "model"}}]},
    {**_response("x"), "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3, "trafficType": "ON_DEMAND",
                                         "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 3}]}},
    {"candidates": [{"content": {"parts": [{"text": "No usage."}]}}]},
    {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}, {"text": "T"}]}}]},
    {"candidates": [{"content": {"parts": [{"text": "only a thought", "thought": True}]}}]},
    {"candidates": [], "promptFeedback": {"blockReason": "SAFETY"}},
    {"candidates": [{"finishReason": "SAFETY"}]},
    _response("Cut sh", finish="MAX_TOKENS"),
    {"candidates": [{"content": {"parts": [{"text": 7}]}}]},
    {"candidates": "not a list"},
])
def test_the_fast_reading_of_common_responses_gives_the_rows_the_sdk_type_gives(response):
    from google.genai import types

    from gemini_batch_provider.core.results import response_row

    fast = parse_output_line({"key": "k", "response": response})
    try:
        expected = response_row("k", "batch", types.GenerateContentResponse.model_validate(response))
    except Exception:  # the SDK's type refuses the shape: the row says the response is unreadable
        assert fast["status"] == "failed" and fast["error"]["status"] == "INVALID_RESPONSE"
        return
    assert fast == expected


def test_the_key_index_keeps_order_and_tells_new_duplicate_unknown():
    from gemini_batch_provider.core.keys import KeyIndex

    with KeyIndex() as index:
        assert index.add("b", 1) and index.add("a", 0) and not index.add("b", 5)
        assert [index.mark_seen(k) for k in ("a", "a", "zz")] == ["new", "duplicate", "unknown"]
        assert list(index.unseen()) == [("b", 1)]


def test_an_embedding_line_lands_its_vector_and_a_line_without_numbers_fails():
    row = parse_output_line({"key": "e", "response": {"embedding": {"values": [0.6, -0.8]}}})
    assert row["status"] == "succeeded" and row["embedding"] == [0.6, -0.8] and row["text"] is None
    for broken in ({"embedding": {"values": []}}, {"embedding": ["0.6"]}, {"embedding": {"values": ["x"]}}):
        row = parse_output_line({"key": "e", "response": broken})
        assert row["status"] == "failed" and row["error"]["status"] == "INVALID_RESPONSE"


# Error lines as the live batch output writes them: a gRPC canonical code, often no status, sometimes
# no code at all; a call's error (HTTP code and status) reads as before.
@pytest.mark.parametrize(("error", "status", "retryable"), [
    ({"code": 3, "message": "bad"}, "INVALID_ARGUMENT", False),
    ({"code": 4, "message": "slow"}, "DEADLINE_EXCEEDED", True),
    ({"code": 8, "message": "quota"}, "RESOURCE_EXHAUSTED", True),
    ({"code": 13, "message": "oops"}, "INTERNAL", True),
    ({"code": 14, "message": "down"}, "UNAVAILABLE", True),
    ({"message": "quota"}, "UNKNOWN", False),
    ({"code": 503, "message": "down", "status": "UNAVAILABLE"}, "UNAVAILABLE", True),
    ({"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}, "INVALID_ARGUMENT", False),
    ({"code": "14", "message": "not a number"}, "UNKNOWN", False),
])
def test_a_row_error_gets_its_status_from_either_code_family(error, status, retryable):
    from gemini_batch_provider.core.land import Rerun

    row = parse_output_line({"error": error, "key": "k"})
    assert row["status"] == "failed" and row["error"]["status"] == status
    assert row["error"]["message"] == error["message"]
    assert Rerun(failed=True)(row) is retryable


def test_the_finish_reason_is_kept_in_the_apis_words_and_a_cut_structured_answer_is_invalid():
    from google.genai import types

    from gemini_batch_provider.core.results import response_row
    from gemini_batch_provider.core.schema import OutputSchema

    cut = parse_output_line({"key": "k", "response": _response('{"summary": "fine"}', finish="MAX_TOKENS")})
    assert (cut["status"], cut["finish_reason"]) == ("succeeded", "MAX_TOKENS")
    schema = OutputSchema({"type": "object", "properties": {"summary": {"type": "string"}}})
    checked = schema.check(cut)  # valid JSON, but cut short: not what was asked for
    assert checked["status"] == "invalid_output" and "MAX_TOKENS" in checked["error"]["message"]
    assert schema.check({**cut, "finish_reason": "STOP"})["parsed"] == {"summary": "fine"}
    blocked = response_row("k", "online", types.GenerateContentResponse.model_validate(
        {"candidates": [{"finishReason": "SAFETY"}]}))
    assert blocked["finish_reason"] == "SAFETY" and blocked["error"]["message"] == "no text in the response (SAFETY)"


def test_an_output_line_without_a_usable_key_answers_no_input_row(tmp_path):
    # An input key that reads like what a missing, null or boolean key would print as.
    lines = [json.dumps({"response": _response("lost")}).encode(),
             json.dumps({"key": None, "response": _response("null")}).encode(),
             json.dumps({"key": True, "response": _response("true")}).encode(),
             json.dumps({"key": 7, "response": _response("seven")}).encode()]
    rows, skipped, _ = _land(tmp_path, ["None", "True", "7"], lines)
    assert {r["key"]: r["status"] for r in rows} == {"7": "succeeded", "None": "missing", "True": "missing"}
    assert skipped["unknown_keys"] == 3


PNG = b"\x89PNG\r\n\x1a\n" + b"picture"


def _picture_response(*parts):
    return {"candidates": [{"content": {"parts": list(parts), "role": "model"}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1292, "totalTokenCount": 1295,
                              "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 2},
                                                          {"modality": "IMAGE", "tokenCount": 1290}]}}


def test_an_answers_pictures_land_as_files_beside_the_results_named_by_key(tmp_path):
    import base64

    picture = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}}
    lines = _lines({"key": "a/b", "response": _picture_response({"text": "A red square."}, picture, picture)},
                   {"key": "only", "response": _picture_response(picture)},
                   {"key": "k" * 300, "response": _picture_response(picture)})
    rows, _, _ = _land(tmp_path, ["a/b", "only", "k" * 300], lines)
    folder = tmp_path / "out" / "results_images"
    assert rows[0]["text"] == "A red square." and rows[0]["images"] == [
        {"file": str(folder / "a%2Fb-0.png"), "mime_type": "image/png"},
        {"file": str(folder / "a%2Fb-1.png"), "mime_type": "image/png"}]
    assert rows[1]["status"] == "succeeded" and rows[1]["text"] is None  # a picture alone is an answer
    assert len(rows[2]["images"][0]["file"].rsplit("/", 1)[-1]) < 100  # a long key is named by its hash
    assert all((folder / name).read_bytes() == PNG for name in ("a%2Fb-0.png", "a%2Fb-1.png", "only-0.png"))
    assert len(list(folder.iterdir())) == 4 and not list(folder.glob("*.part"))
    assert rows[0]["usage"]["candidates_tokens_details"][1] == {"modality": "IMAGE", "token_count": 1290}


def test_rows_of_a_shard_never_created_land_cancelled_wherever_it_lies(tmp_path):
    """A shard resubmitted by a retry may wait for room while later shards have jobs: the jobs are
    matched to their shards around it."""
    from gemini_batch_provider.core.jobs import JobStatus
    from gemini_batch_provider.core.land import land

    jobs = [JobStatus("batches/zero", "JOB_STATE_SUCCEEDED"), JobStatus("batches/two", "JOB_STATE_CANCELLED")]
    writer = ResultsWriter(tmp_path / "results.jsonl")
    again = land(jobs, [("k0", 0), ("k1", 1), ("k2", 2)], backend=None, writer=writer, never_created=frozenset({1}))
    writer.close()
    rows = {row["key"]: row for row in map(json.loads, writer.path.read_text().splitlines())}
    assert again == set() and [rows[k]["status"] for k in ("k0", "k1", "k2")] == ["missing", "cancelled", "cancelled"]
    assert "batches/zero has no readable line" in rows["k0"]["error"]["message"]
    assert "shard 2 waited for room in the project's batch quota" in rows["k1"]["error"]["message"]
    assert "batches/two ended JOB_STATE_CANCELLED" in rows["k2"]["error"]["message"]


def test_a_response_the_sdk_must_read_keeps_its_pictures_whatever_new_fields_it_carries():
    picture = {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}  # base64 of the PNG magic
    response = {"candidates": [{"content": {"parts": [{"text": "A drawing."}, picture]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 4, "serviceTier": "flex"}}  # a field google-genai 3.6 lacks
    row = parse_output_line({"key": "k", "response": response})
    assert row["status"] == "succeeded" and row["text"] == "A drawing."
    assert row["images"] == [{"mime_type": "image/png", "data": b"\x89PNG\r\n\x1a\n"}]
