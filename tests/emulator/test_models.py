"""generateContent, countTokens, models and API-key checks of the emulator, through the real SDK."""

from __future__ import annotations

import json

import pytest
from google import genai
from google.genai import errors, types

from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread

pytestmark = pytest.mark.integration

TEXT = (
    "The json module encodes and decodes JSON. It is small. "
    "The json module offers dumps and loads for JSON text and JSON files."
)


def test_generate_content_is_an_extractive_deterministic_summary(client):
    first = client.models.generate_content(model="gemini-2.5-flash", contents=TEXT)
    again = client.models.generate_content(model="gemini-2.5-flash", contents=TEXT)
    assert first.text == again.text
    assert first.text in TEXT and first.text.endswith(".")
    assert first.text != "It is small."  # the sentence with the most frequent content words wins
    usage = first.usage_metadata
    assert usage.prompt_token_count > 0 and usage.thoughts_token_count > 0  # 2.5 Flash thinks by default
    spent = usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
    assert usage.total_token_count == spent


# A docstring as the nightly DAG sends it: a label line, a prose lead, then a doctest, a list, a
# table and an indented code block, each worth more words than the lead.
DOCSTRING_PROMPT = """Module: shelve

Manage shelves of pickled objects.

>>> import shelve
>>> d = shelve.open(filename) # open, with (g)dbm filename -- no suffix
>>> d[key] = data   # store data at key (overwrites old data if using an existing key)

- d[key] = data stores data at key, d[key] reads data at key, del d[key] deletes data at key
- data = d[key] reads a copy of the data at key, keys of the shelf are strings

=========  ==========================================
Operation  What the shelf does with the data at key
=========  ==========================================

    data = d[key]
    data.append(anitem)
    d[key] = data
"""


@pytest.mark.parametrize(("prompt", "summary"), [
    (DOCSTRING_PROMPT, "Manage shelves of pickled objects."),
    ("Module: encodings.utf_32\n\nPython 'utf-32' Codec", "Python 'utf-32' Codec"),
])
def test_a_summary_comes_from_prose_never_code_lists_tables_or_the_label(client, prompt, summary):
    answer = client.models.generate_content(model="gemini-2.5-flash", contents=prompt)
    assert answer.text == summary


async def test_generate_content_async_with_json_schema(client):
    config = types.GenerateContentConfig(
        system_instruction="Summarize and categorize.",
        response_mime_type="application/json",
        response_schema={
            "type": "OBJECT",
            "properties": {
                "summary": {"type": "STRING"},
                "category": {"type": "STRING", "enum": ["networking", "file formats"]},
                "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
            },
        },
    )
    response = await client.aio.models.generate_content(model="gemini-2.5-flash", contents=TEXT, config=config)
    parsed = json.loads(response.text)
    assert set(parsed) == {"summary", "category", "tags"}
    assert parsed["category"] == "file formats"  # the option whose words the prompt shares ("files")
    assert isinstance(parsed["tags"], list) and parsed["summary"] in TEXT


def test_count_tokens_sync_and_async_counts_words_in_pieces_and_marks_one_each(client):
    import asyncio

    prose = "The json module encodes JSON."  # The json module encode|s JSON . : 29 characters, 7 tokens
    assert client.models.count_tokens(model="gemini-2.5-flash", contents=prose).total_tokens == 7
    code = "print(a, b)"  # print ( a , b ) : 11 characters, 6 tokens, code being denser than prose
    assert asyncio.run(client.aio.models.count_tokens(model="gemini-2.5-flash", contents=code)).total_tokens == 6


def test_models_list_and_get(client):
    names = [m.name for m in client.models.list()]
    assert "models/gemini-2.5-flash" in names
    assert client.models.get(model="gemini-2.5-pro").input_token_limit == 1048576


def test_keys_are_required_and_checked():
    with EmulatorThread(EmulatorConfig(api_keys=frozenset({"good-key-123"}))) as emu:
        def make(key):
            return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=emu.base_url))

        good = make("good-key-123")
        assert good.models.count_tokens(model="gemini-2.5-flash", contents="abcd").total_tokens == 1
        bad = make("bad-key-456")
        with pytest.raises(errors.ClientError) as info:
            bad.models.count_tokens(model="gemini-2.5-flash", contents="abcd")
        assert info.value.code == 400 and "API key not valid" in info.value.message
        assert "bad-key-456" not in str(info.value)


def test_missing_key_is_refused(emulator):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{emulator.base_url}/v1beta/models", method="GET")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request)
    assert info.value.code == 403
    assert json.loads(info.value.read())["error"]["status"] == "PERMISSION_DENIED"


@pytest.mark.parametrize(("model", "thinking", "most"), [
    ("gemini-3-flash-preview", None, 16384),  # Gemini 3 thinks at HIGH by default
    ("gemini-3-flash-preview", {"thinking_level": "LOW"}, 1024),
    ("gemini-2.5-flash", {"thinking_budget": 40}, 40),
    ("gemini-2.5-flash", {"thinking_budget": 0}, 0),
    ("gemini-2.5-flash-lite", None, 0),  # Flash-Lite 2.5 does not think unless given a budget
])
def test_a_thinking_model_answers_with_its_thought_count_and_a_signature_within_its_budget(
        client, model, thinking, most):
    config = types.GenerateContentConfig(thinking_config=thinking)
    response = client.models.generate_content(model=model, contents=TEXT, config=config)
    thoughts = response.usage_metadata.thoughts_token_count or 0
    assert thoughts <= most and (thoughts > 0) == (most > 0)
    parts = response.candidates[0].content.parts
    assert [bool(p.thought_signature) for p in parts] == ([False, True] if thoughts else [False])
    assert response.text in TEXT  # the signature part adds nothing to the text


def test_thoughts_asked_for_come_as_a_thought_part_never_in_the_text(client):
    config = types.GenerateContentConfig(thinking_config={"thinking_level": "LOW", "include_thoughts": True})
    response = client.models.generate_content(model="gemini-3-flash-preview", contents=TEXT, config=config)
    [thought] = [p for p in response.candidates[0].content.parts if p.thought]
    assert thought.text and thought.text not in response.text and response.text in TEXT


def test_a_retired_model_id_is_not_found_as_the_api_answers_it(client):
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gemini-3-pro-preview", contents=TEXT)
    assert info.value.code == 404
    assert client.models.get(model="gemini-3.1-pro-preview").thinking is True


def test_an_image_model_answers_with_a_picture_and_its_image_tokens(client):
    config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"])
    response = client.models.generate_content(model="gemini-3.1-flash-image-preview", contents=TEXT, config=config)
    [picture] = [p.inline_data for p in response.candidates[0].content.parts if p.inline_data]
    assert picture.mime_type == "image/png" and picture.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert response.text in TEXT  # the text part beside the picture
    details = {d.modality.value: d.token_count for d in response.usage_metadata.candidates_tokens_details}
    assert details["IMAGE"] == 1290 and details["TEXT"] > 0
    assert response.usage_metadata.candidates_token_count == details["IMAGE"] + details["TEXT"]
    only = client.models.generate_content(model="gemini-3.1-flash-image-preview", contents=TEXT,
                                          config=types.GenerateContentConfig(response_modalities=["IMAGE"]))
    assert [bool(p.inline_data) for p in only.candidates[0].content.parts] == [True]
    assert only.text is None
    other = client.models.generate_content(model="gemini-3.1-flash-image-preview", contents=TEXT + " Another.",
                                           config=config)
    assert other.candidates[0].content.parts[1].inline_data.data != picture.data  # each prompt its own picture


def test_a_text_model_refuses_to_draw_as_the_api_does(client):
    config = types.GenerateContentConfig(response_modalities=["IMAGE"])
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gemini-3-flash-preview", contents=TEXT, config=config)
    assert info.value.code == 400 and "response modalities" in info.value.message


PIXEL = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
                      "53de0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082")


@pytest.mark.parametrize(("model", "resolution", "media"), [
    ("gemini-3-flash-preview", None, 258),
    ("gemini-3-flash-preview", "MEDIA_RESOLUTION_LOW", 280),
    ("gemini-3-flash-preview", "MEDIA_RESOLUTION_HIGH", 1120),
    ("gemini-2.5-flash", "MEDIA_RESOLUTION_LOW", 64),
])
def test_media_resolution_sets_what_an_image_costs_and_count_tokens_agrees(client, model, resolution, media):
    contents = [types.Part.from_bytes(data=PIXEL, mime_type="image/png"), "What is this?"]
    config = types.GenerateContentConfig(media_resolution=resolution, thinking_config={"thinking_budget": 0}
                                         if model.startswith("gemini-2.5") else {"thinking_level": "MINIMAL"})
    response = client.models.generate_content(model=model, contents=contents, config=config)
    assert response.usage_metadata.prompt_token_count == media + 4  # "What is this?": 13 characters, 4 tokens
    assert client.models.count_tokens(model=model, contents=contents).total_tokens == 258 + 4  # no config sent
