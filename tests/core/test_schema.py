"""Structured output: a response schema given as a pydantic model or a JSON schema, answers checked."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.requests import RequestSpec
from gemini_batch_provider.core.results import _row
from gemini_batch_provider.core.schema import OutputSchema

JSON_SCHEMA = {
    "type": "object",
    "properties": {"label": {"enum": ["bug", "feature"]}, "score": {"type": "number", "minimum": 0}},
    "required": ["label", "score"],
}


class Label(BaseModel):
    label: str = Field(pattern="^(bug|feature)$")
    score: float = Field(ge=0)


def _succeeded(text):
    return _row("k1", "succeeded", "batch", text=text)


@pytest.mark.parametrize("schema", [JSON_SCHEMA, Label])
def test_a_matching_answer_is_parsed(schema):
    row = OutputSchema(schema).check(_succeeded('{"label": "bug", "score": 0.5}'))
    assert row["status"] == "succeeded" and row["parsed"] == {"label": "bug", "score": 0.5}


@pytest.mark.parametrize("schema", [JSON_SCHEMA, Label])
@pytest.mark.parametrize(("text", "reason"), [
    ('{"label": "question", "score": 1}', "label"),
    ('{"label": "bug", "score": -1}', "score"),
    ('{"label": "bug"}', "score"),
    ("not json at all", "JSON"),
])
def test_an_answer_that_does_not_match_is_invalid_output_with_the_reason(schema, text, reason):
    row = OutputSchema(schema).check(_succeeded(text))
    assert row["status"] == "invalid_output" and row["parsed"] is None and row["text"] == text
    assert row["error"]["status"] == "INVALID_OUTPUT"
    assert "does not match response_schema" in row["error"]["message"] and reason in row["error"]["message"]


def test_rows_that_did_not_succeed_pass_unchanged():
    failed = _row("k1", "failed", "batch", error={"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"})
    assert OutputSchema(JSON_SCHEMA).check(failed) == failed


def test_the_request_asks_gemini_for_json_of_the_schema():
    config = OutputSchema(Label).generation_config()
    request = RequestSpec("Label: {text}", generation_config=config).request({"text": "crash"}, 0)
    assert request["generationConfig"]["responseMimeType"] == "application/json"
    assert request["generationConfig"]["responseJsonSchema"] == Label.model_json_schema()


@pytest.mark.parametrize(("schema", "message"), [
    ({"type": "objekt"}, "not a valid JSON schema"),
    ("{}", "pydantic model class or a JSON schema dict, got str"),
    (dict, "got type"),
])
def test_a_bad_schema_is_refused_when_the_dag_is_parsed(schema, message):
    with pytest.raises(InputError, match=message):
        OutputSchema(schema)


def test_the_schema_is_given_once():
    from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator

    with pytest.raises(ValueError, match="give the schema once"):
        GeminiConcurrentGenerateOperator(task_id="t", prompt_template="{text}", output_path="/tmp/x", records=[],
                                         response_schema=Label, generation_config={"response_schema": {}})
