"""Turning records into Gemini ``GenerateContentRequest`` objects (or ``EmbedContentRequest`` ones,
for embeddings), one per record, each with a key.

Every record is checked as it is turned into a request, so a batch input file is never complete (and
never uploaded) unless every row is valid: the key is present and unique, every ``{field}`` of the
prompt template is present and not null, and the prompt is not empty.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from .config import check_plain_fields, wire_config
from .errors import InputError
from .keys import KeyIndex

if TYPE_CHECKING:
    from .media import MediaStager

#: How a prompt_template writes a brace that is text, said in every message about braces.
LITERAL_BRACES = ("write a literal brace doubled, '{{' or '}}' (Python's str.format). Airflow's Jinja reads '{{' "
                  "first, so in an operator wrap such text in {% raw %}...{% endraw %}, e.g. "
                  "'{% raw %}Answer as {{\"summary\": ...}}{% endraw %}', or give it in system_instruction, "
                  "which no row fills in")


def request_digest(model: str, request: dict[str, Any]) -> str:
    """The SHA-256 (hex) of ``model`` and ``request`` (wire shape) with their keys sorted: equal for
    the same request however its dicts were built, different when anything sent differs. A results
    row's ``request_digest`` (``core.answers``)."""
    return hashlib.sha256(orjson.dumps([model, request], option=orjson.OPT_SORT_KEYS)).hexdigest()


def user_content(text: str) -> dict[str, Any]:
    """Wire shape of ``types.Content(role="user", parts=[types.Part(text=text)])``, built directly
    because it is built once per row."""
    return {"parts": [{"text": text}], "role": "user"}


@dataclass(frozen=True)
class RequestSpec:
    """How each record becomes a request.

    :param prompt_template: ``str.format`` template; each ``{field}`` names a record field.
    :param key_field: the record field holding the row's unique key; the 0-based row index when None.
    :param system_instruction: text sent as ``system_instruction`` with every request.
    :param generation_config: fields of ``google.genai.types.GenerationConfig`` (snake_case or
        camelCase, e.g. ``temperature``, ``max_output_tokens``, ``response_mime_type``,
        ``response_schema``); validated by the SDK's own type (``core.config``).
    :param media_fields: record fields holding media (see ``core.media``); each must appear in the
        template, which places its parts there: ``"Describe {image} in one sentence"``.
    :param media: the run's ``MediaStager``, which gives each media value's parts.
    :param preview: a spec built when the DAG is parsed, only to be checked: its generation config
        is checked without the SDK (``core.config.check_plain_fields``), and it builds no request.
    :raises InputError: for a template that does not parse, a generation_config the SDK rejects,
        or a media field the template does not place.
    """

    prompt_template: str
    key_field: str | None = None
    system_instruction: str | None = None
    generation_config: dict[str, Any] | None = None
    media_fields: tuple[str, ...] = ()
    media: MediaStager | None = None
    preview: bool = False
    fields: tuple[str, ...] = field(init=False)
    _shared: dict[str, Any] = field(init=False, repr=False)
    _segments: tuple[tuple[str, str | None, str, str | None], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.prompt_template, str) or not self.prompt_template.strip():
            raise InputError("prompt_template is empty; give a template such as 'Summarize: {text}'")
        try:
            segments = tuple(string.Formatter().parse(self.prompt_template))
        except ValueError as exc:
            raise InputError(f"prompt_template does not parse ({exc}); {LITERAL_BRACES}") from None
        names = [name for _, name, _, _ in segments if name is not None]
        for _, name, spec, conversion in segments:
            if name is None:
                continue
            if not name.isidentifier():
                raise InputError(f"prompt_template fields must be plain names like {{text}}; got {{{name}}}. "
                                 f"If the braces are text, {LITERAL_BRACES}")
            if conversion not in (None, "r", "s", "a"):
                raise InputError(f"prompt_template field {{{name}!{conversion}}}: unknown conversion "
                                 f"'!{conversion}'; use !r, !s, !a or none")
            if "{" in (spec or ""):
                raise InputError(f"prompt_template field {{{name}:{spec}}}: a format spec can't hold another field; "
                                 "write the spec out, e.g. {text:>20}")
        shared: dict[str, Any] = {}
        if self.system_instruction:
            shared["systemInstruction"] = {"parts": [{"text": self.system_instruction}]}  # a types.Content
        if self.generation_config:
            check_plain_fields(self.generation_config)
            if not self.preview:
                shared["generationConfig"] = wire_config(self.generation_config)
        unplaced = [name for name in self.media_fields if name not in names]
        if unplaced:
            raise InputError(f"media field(s) {unplaced} are not in prompt_template; place each where its media "
                             f"go, e.g. 'Describe {{{unplaced[0]}}} in one sentence'")
        object.__setattr__(self, "fields", tuple(dict.fromkeys(names)))
        object.__setattr__(self, "_shared", shared)
        object.__setattr__(self, "_segments", segments)

    def _body(self, prompt: str) -> dict[str, Any]:
        return {"contents": [user_content(prompt)], **self._shared}

    def request(self, record: dict[str, Any], row: int) -> dict[str, Any]:
        """The ``GenerateContentRequest`` (wire shape) for one record; raises InputError."""
        assert not self.preview, "a preview spec only checks a plan; it builds no request"
        for name in self.fields:
            value = record.get(name)
            if value is None:
                raise InputError(
                    f"row {row}: field {name!r} used by prompt_template is missing or null; "
                    f"add it to the record or remove {{{name}}} from the template"
                )
            if name not in self.media_fields and not isinstance(value, (str, int, float)):
                raise InputError(f"row {row}: field {name!r} is a {type(value).__name__}, where prompt_template wants "
                                 "text; flatten it into text (e.g. json.dumps) before it reaches the operator")
        if self.media_fields:
            return {"contents": [{"parts": self._media_parts(record, row), "role": "user"}], **self._shared}
        try:
            prompt = self.prompt_template.format_map(record)
        except (ValueError, TypeError) as exc:  # a format spec that does not fit a value, e.g. {n:d} on text
            raise self._format_error(record, row, exc) from None
        if not prompt.strip():
            raise InputError(f"row {row}: the prompt is empty; give the row some text or drop it")
        _check_text(prompt, row)
        return self._body(prompt)

    def _media_parts(self, record: dict[str, Any], row: int) -> list[dict[str, Any]]:
        """The template's text and the record's media, in the template's order, as parts."""
        assert self.media is not None, "a media run needs its MediaStager"
        formatter = string.Formatter()
        parts: list[dict[str, Any]] = []
        text: list[str] = []

        def flush() -> None:
            joined = "".join(text)
            if joined.strip():
                _check_text(joined, row)
                parts.append({"text": joined})
            text.clear()

        for literal, name, spec, conversion in self._segments:
            text.append(literal)
            if name is None:
                continue
            if name in self.media_fields:
                flush()
                parts.extend(self.media.parts(record[name]))
            else:
                try:
                    text.append(formatter.format_field(formatter.convert_field(record[name], conversion), spec or ""))
                except (ValueError, TypeError) as exc:
                    raise self._format_error(record, row, exc) from None
        flush()
        return parts

    def _format_error(self, record: dict[str, Any], row: int, exc: Exception) -> InputError:
        """The refusal of a row whose value does not fit its field's format spec, naming the field."""
        formatter = string.Formatter()
        for _, name, spec, conversion in self._segments:
            if name is None or name in self.media_fields:
                continue
            value = record[name]
            try:
                formatter.format_field(formatter.convert_field(value, conversion), spec or "")
            except (ValueError, TypeError) as problem:
                return InputError(f"row {row}: field {name!r} ({type(value).__name__} {str(value)[:40]!r}) does not "
                                  f"fit its format spec {{{name}:{spec}}} in prompt_template ({problem}); change the "
                                  "spec, or the field's type (CSV cells are text)")
        return InputError(f"row {row}: prompt_template can't be filled in ({exc})")

    def key(self, record: dict[str, Any], row: int) -> str:
        """The row's key: the 0-based row index, or the ``key_field`` value as text (a string or
        a whole number, not blank; ``7`` and ``"7"`` are the same key)."""
        if self.key_field is None:
            return str(row)
        value = record.get(self.key_field)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InputError(f"row {row}: key field {self.key_field!r} is missing or blank; every row needs a key")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InputError(f"row {row}: key field {self.key_field!r} is a {type(value).__name__}; a key is a string "
                             "or a whole number, so that it reads the same in the results")
        key = str(value)
        if _surrogate_at(key) is not None:
            raise InputError(f"row {row}: key field {self.key_field!r} holds an unpaired surrogate, which is not "
                             "text; fix how the input was decoded")
        return key


@dataclass(frozen=True)
class EmbedRequestSpec(RequestSpec):
    """How each record becomes an ``EmbedContentRequest``: the template gives the text to embed.

    :param task_type: what the vectors are for, e.g. ``RETRIEVAL_DOCUMENT``, ``SEMANTIC_SIMILARITY``
        (https://ai.google.dev/gemini-api/docs/embeddings#task-types); the model's default when None.
    :param output_dimensionality: vector size (gemini-embedding-001: up to 3072, its default).
    :raises InputError: as RequestSpec, and for a size that is not a positive integer.
    """

    task_type: str | None = None
    output_dimensionality: int | None = None

    def __post_init__(self) -> None:
        if self.system_instruction or self.generation_config:
            raise InputError("embeddings take no system_instruction or generation_config")
        super().__post_init__()
        size = self.output_dimensionality
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise InputError(f"output_dimensionality must be a positive integer, got {size!r}")
        shared = {"taskType": self.task_type, "outputDimensionality": size}
        object.__setattr__(self, "_shared", {name: value for name, value in shared.items() if value is not None})

    def _body(self, prompt: str) -> dict[str, Any]:
        return {"content": user_content(prompt), **self._shared}


def _surrogate_at(text: str) -> int | None:
    """Where ``text`` holds an unpaired surrogate (no text, and no UTF-8); None when it holds none."""
    if text.isascii():  # one C call that passes most texts (a surrogate is not ASCII)
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _check_text(text: str, row: int) -> None:
    at = _surrogate_at(text)
    if at is not None:
        raise InputError(f"row {row}: the prompt holds {text[at]!r} at character {at}, an "
                         "unpaired surrogate that is not text; fix how the input was decoded")


def build_requests(records: Iterable[dict[str, Any]], spec: RequestSpec,
                   refused: Callable[[str, InputError], None] | None = None) -> Generator[
        tuple[str, dict[str, Any]], None, None]:
    """Yield ``(key, request)`` per record, in order; raises InputError on the first bad row,
    naming it by its position and its key. Given ``refused``, a row whose request can't be built
    (a field missing, null or of the wrong type, an empty prompt, text that is no text) is handed to
    it instead, ``(key, error)``, and left out; a row with no usable key, or another row's, still
    raises: its key is how a row lands.

    Keys must be unique; the keys seen are kept on disk (``KeyIndex``), not in memory.
    """
    with KeyIndex() as seen:
        for row, record in enumerate(records):
            key = spec.key(record, row)
            if not seen.add(key, row):
                raise InputError(f"row {row}: key {key!r} already used by row {seen.value(key)}; keys must be unique")
            try:
                request = spec.request(record, row)
            except InputError as exc:  # "row N: ..." names the row as the results do too: by its key
                error = InputError(str(exc).replace(f"row {row}:", f"row {row} (key {key!r}):", 1))
                if refused is None:
                    raise error from None
                refused(key, error)
                continue
            yield key, request


def blank_fields(records: Iterable[dict[str, Any]], spec: RequestSpec, shown: int = 3) -> tuple[int, list[str]]:
    """How many rows fill a template field with empty or whitespace-only text, and the first
    ``shown`` of them as ``row N (key 'k'): field 'f'``. Such a row's prompt is still sent as it is
    (``"Review: "``), answered and billed: seldom what was meant, never an error."""
    text_fields = [name for name in spec.fields if name not in spec.media_fields]
    count, first = 0, []
    for row, record in enumerate(records if text_fields else ()):
        blank = [name for name in text_fields if isinstance(record.get(name), str) and not record[name].strip()]
        if blank:
            count += 1
            if len(first) < shown:
                first.append(f"row {row} (key {spec.key(record, row)!r}): field {blank[0]!r}")
    return count, first


def iter_keys(records: Iterable[dict[str, Any]], spec: RequestSpec) -> Iterator[str]:
    """Each record's key, in order, without building its request: what landing results needs."""
    for row, record in enumerate(records):
        yield spec.key(record, row)
