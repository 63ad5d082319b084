"""A request's ``generation_config``, checked in two steps so that parsing a DAG file stays cheap.

When the DAG is parsed, the fields whose type is plain (numbers, whole numbers, flags, text) are
checked without the SDK, whose types cost most of a second to import; when a try starts, before
anything is sent, the SDK's own ``GenerationConfig`` validates the whole config and gives its wire
shape (https://ai.google.dev/api/generate-content#generationconfig).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InputError

DOCS = "https://ai.google.dev/api/generate-content#generationconfig"
NUMBER, WHOLE, FLAG, TEXT = "a valid number", "a valid integer", "a valid boolean", "a valid string"
#: ``GenerationConfig`` fields of a plain type, by their snake_case name (camelCase is taken too).
PLAIN_FIELDS = {
    "temperature": NUMBER, "top_p": NUMBER, "top_k": NUMBER, "presence_penalty": NUMBER,
    "frequency_penalty": NUMBER, "candidate_count": WHOLE, "max_output_tokens": WHOLE, "seed": WHOLE,
    "logprobs": WHOLE, "response_logprobs": FLAG, "audio_timestamp": FLAG, "response_mime_type": TEXT,
    "media_resolution": TEXT,
}
_CHECKS = {
    NUMBER: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    WHOLE: lambda v: isinstance(v, int) and not isinstance(v, bool),
    FLAG: lambda v: isinstance(v, bool),
    TEXT: lambda v: isinstance(v, str),
}


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _refusal(problems: str) -> InputError:
    return InputError(f"generation_config is not a valid GenerationConfig ({problems}); see {DOCS}")


def check_plain_fields(config: Mapping[str, Any]) -> None:
    """Refuse a config that is no mapping of field names, or whose plain fields (``PLAIN_FIELDS``)
    have a value of another type. No SDK: what a DAG file's parse checks.

    :raises InputError: naming the field and the type it takes."""
    if not isinstance(config, Mapping) or not all(isinstance(name, str) for name in config):
        raise _refusal(f"a dict of field names, got {type(config).__name__}")
    for name, value in config.items():
        wants = PLAIN_FIELDS.get(_snake(name))
        if wants is not None and value is not None and not _CHECKS[wants](value):
            raise _refusal(f"{name}: Input should be {wants}, got {value!r:.60}")


def wire_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config validated by the SDK's ``GenerationConfig``, in its REST (camelCase) shape.

    :raises InputError: naming each field the SDK refuses and why."""
    import pydantic
    from google.genai import types  # here, not up front: see the module

    try:
        checked = types.GenerationConfig.model_validate(dict(config))
    except pydantic.ValidationError as exc:
        raise _refusal("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    return checked.model_dump(mode="json", by_alias=True, exclude_none=True)
