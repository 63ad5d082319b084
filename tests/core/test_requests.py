"""Records -> GenerateContentRequest, validated before anything is uploaded."""

from __future__ import annotations

import re

import pytest
from google.genai import types

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.records import iter_records
from gemini_batch_provider.core.requests import (
    EmbedRequestSpec,
    RequestSpec,
    blank_fields,
    build_requests,
    user_content,
)
from gemini_batch_provider.core.tokens import estimate_split


def test_user_content_matches_the_sdk_serialization():
    sdk = types.Content(role="user", parts=[types.Part(text="héllo")]).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    assert user_content("héllo") == sdk


def test_requests_carry_prompt_system_instruction_and_camelcase_config():
    spec = RequestSpec(
        prompt_template="Summarize {name}: {body}",
        key_field="name",
        system_instruction="Be brief.",
        generation_config={"temperature": 0.1, "max_output_tokens": 50, "response_mime_type": "application/json"},
    )
    [(key, request)] = build_requests([{"name": "os", "body": "OS routines."}], spec)
    assert key == "os"
    assert request == {
        "contents": [{"parts": [{"text": "Summarize os: OS routines."}], "role": "user"}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.1, "maxOutputTokens": 50, "responseMimeType": "application/json"},
    }
    # The SDK accepts what we built as its own request type.
    types.GenerateContentConfig.model_validate(request["generationConfig"])


def test_embedding_requests_carry_the_text_task_type_and_size():
    spec = EmbedRequestSpec(prompt_template="{title}: {body}", task_type="RETRIEVAL_DOCUMENT",
                            output_dimensionality=256)
    [(key, request)] = build_requests([{"title": "os", "body": "OS routines."}], spec)
    assert key == "0"
    assert request == {"content": user_content("os: OS routines."), "taskType": "RETRIEVAL_DOCUMENT",
                       "outputDimensionality": 256}
    assert estimate_split(request) == (4, 0, 0, 0)  # 16 characters; an embedding has no output or thinking tokens


def test_keys_default_to_the_row_index():
    keys = [k for k, _ in build_requests([{"t": "a"}, {"t": "b"}], RequestSpec(prompt_template="{t}"))]
    assert keys == ["0", "1"]


def test_requests_left_half_read_close_from_another_thread():
    """A generator dropped before its end is closed by the garbage collector in whichever thread runs
    it; its key index goes with it, without an error."""
    from concurrent.futures import ThreadPoolExecutor

    requests = build_requests([{"t": "a"}, {"t": "b"}], RequestSpec(prompt_template="{t}"))
    assert next(requests)[0] == "0"
    with ThreadPoolExecutor(1) as thread:
        thread.submit(requests.close).result()  # raised sqlite3.ProgrammingError before


@pytest.mark.parametrize(
    ("records", "spec", "message"),
    [
        ([{"t": "a"}, {"u": "b"}], RequestSpec(prompt_template="{t}"), "row 1 (key '1'): field 't'"),
        ([{"t": None}], RequestSpec(prompt_template="{t}"), "row 0 (key '0'): field 't' used by prompt_template is "
                                                            "missing"),
        ([{"id": "doc-7", "t": "  "}], RequestSpec(prompt_template="{t}", key_field="id"),
         "row 0 (key 'doc-7'): the prompt is empty"),
        ([{"k": "x", "t": "a"}, {"k": "x", "t": "b"}], RequestSpec(prompt_template="{t}", key_field="k"),
         "row 1: key 'x' already used by row 0"),
        ([{"t": "a"}], RequestSpec(prompt_template="{t}", key_field="id"), "row 0: key field 'id' is missing"),
    ],
)
def test_bad_rows_name_the_row_and_field(records, spec, message):
    with pytest.raises(InputError, match=re.escape(message)):
        list(build_requests(records, spec))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt_template": ""}, "prompt_template is empty"),
        ({"prompt_template": "{unclosed"}, "does not parse"),
        ({"prompt_template": "{a.b}"}, "plain names"),
        ({"prompt_template": "{t}", "generation_config": {"temprature": 1}}, "generation_config is not a valid"),
        ({"prompt_template": "{t}", "generation_config": {"temperature": "hot"}}, "temperature"),
    ],
)
def test_bad_specs_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        RequestSpec(**kwargs)


def test_records_from_jsonl_and_csv(tmp_path):
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"t": "a"}\n\n{"t": "b"}\n')
    csv_file = tmp_path / "in.csv"
    csv_file.write_text('t,n\n"a, with comma",1\nb,2\n')
    assert list(iter_records(jsonl)) == [{"t": "a"}, {"t": "b"}]
    jsonl.write_bytes(b'\xef\xbb\xbf{"t": "a"}\n')  # a byte-order mark first, as some editors save
    assert list(iter_records(jsonl)) == [{"t": "a"}]
    assert list(iter_records(str(csv_file))) == [{"t": "a, with comma", "n": "1"}, {"t": "b", "n": "2"}]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", '{"t": "a"}\n{oops\n', "line 2: not valid JSON"),
        ("list.jsonl", "[1, 2]\n", "line 1: expected a JSON object"),
        ("in.txt", "x", "unknown extension"),
    ],
)
def test_bad_files_name_the_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        list(iter_records(path))


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        list(iter_records(tmp_path / "nope.jsonl"))


def test_rows_that_fill_a_template_field_with_blank_text_are_counted_and_the_first_named_by_key():
    spec = RequestSpec(prompt_template="Review of {product}: {text}", key_field="id")
    rows = [{"id": "a", "product": "kettle", "text": "Boils fast."},
            {"id": "b", "product": "kettle", "text": "  \n"},
            {"id": "c", "product": "", "text": "Fine."},
            {"id": "d", "product": "lamp", "text": 0},  # a number is never blank
            {"id": "e", "product": "lamp", "text": ""}]
    first = ["row 1 (key 'b'): field 'text'", "row 2 (key 'c'): field 'product'"]
    assert blank_fields(rows, spec, shown=2) == (3, first)
    # the rows still build: blank text is sent as it is, never refused
    assert [key for key, _ in build_requests(rows, spec)] == ["a", "b", "c", "d", "e"]


def test_a_template_without_text_fields_reads_no_row_for_blanks():
    spec = RequestSpec(prompt_template="Describe {photo}", key_field="id", media_fields=("photo",))

    def never():
        raise AssertionError("read")
        yield

    assert blank_fields(never(), spec) == (0, [])
