"""The emulator's synthetic model: deterministic answers with plausible token counts.

Given a ``GenerateContentRequest`` (wire shape, camelCase or snake_case keys), it answers with an
extractive one-sentence summary of the user's text, or, when the request asks for JSON
(``responseMimeType: application/json``), with JSON that is valid against the request's
``responseSchema`` / ``responseJsonSchema``. An image model asked for ``IMAGE`` in
``responseModalities`` adds a picture (``media.picture``) and its 1290 image tokens. Given an
``EmbedContentRequest``, it answers with an embedding: the text's words hashed into the vector's
dimensions and normalised to length 1, so that texts sharing words lie close together. The same
request always gets the same answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections import Counter
from typing import Any

from .errors import InvalidRequest
from .media import FileReader, describe, media_of, picture

MEDIA_TOKENS = 258  # Gemini's count for an image of up to 384x384 pixels
# Tokens a medium takes at each generationConfig.mediaResolution (Gemini 3 and 2.5 count differently:
# https://ai.google.dev/gemini-api/docs/media-resolution, 2026-11); MEDIA_TOKENS when it is not set.
MEDIA_RESOLUTION_TOKENS = {
    "gemini-3": {"MEDIA_RESOLUTION_LOW": 280, "MEDIA_RESOLUTION_MEDIUM": 560, "MEDIA_RESOLUTION_HIGH": 1120},
    "gemini-2": {"MEDIA_RESOLUTION_LOW": 64, "MEDIA_RESOLUTION_MEDIUM": 256, "MEDIA_RESOLUTION_HIGH": 256},
}
# What an answer's picture costs: 1290 output tokens for one of up to 1024x1024 pixels
# (https://ai.google.dev/gemini-api/docs/pricing, image output, 2026-11).
PICTURE_TOKENS = 1290
# Thinking (https://ai.google.dev/gemini-api/docs/thinking): the most tokens a request thinks at each
# thinkingLevel (Gemini 3), and each thinking model's cap when the request sets neither level nor budget.
THINKING_LEVEL_CAP = {"MINIMAL": 0, "LOW": 1024, "MEDIUM": 4096, "HIGH": 16384, "XHIGH": 32768}
DEFAULT_THINKING_CAP = {"gemini-2.5-pro": 32768, "gemini-2.5-flash": 24576, "gemini-3-flash-preview": 16384,
                        "gemini-3.1-pro-preview": 16384, "gemini-3.1-flash-lite-preview": 16384,
                        "gemini-3.1-flash-lite": 16384}

_PIECE = re.compile(r"\w{1,6}|[^\w\s]")  # a token: up to six word characters, or one mark
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PARAGRAPH = re.compile(r"\n\s*\n")
_WORD = re.compile(r"[a-z][a-z0-9_]{2,}")
_LABEL = re.compile(r"[\w .-]{1,40}:\s*\S{1,60}")  # "Module: os", "Version: 2"
_RULE = re.compile(r"[=~^*-]{4,}")  # a heading's underline, a table's border
_CODE_LINE = re.compile(r"\s*(import |from \S+ import |[\w.\[\]]+ ?=[^=]|[\w.]+\([^)]*\)?\s*$)")  # x = ..., f(...)
_STOPWORDS = frozenset(
    """the and for are but not you all any can had her was one our out has him his how its may new now
    old see two way who did get let put say she too use this that with from they will have been were
    what when your which their there than then them these those into more some such only also each
    other about would could should over under very just like most many much used uses using""".split()
)
EMBEDDING_DIMENSIONS = 3072  # gemini-embedding-001's default size
MIN_SUMMARY_WORDS = 4
MAX_SUMMARY_WORDS = 40


def _get(mapping: dict[str, Any], camel: str, snake: str) -> Any:
    return mapping.get(camel, mapping.get(snake))


def count_tokens(text: str) -> int:
    """Tokens as a subword tokenizer makes them, roughly: each word in pieces of up to six
    characters, each punctuation mark one, spaces none. English prose comes to about 4 characters a
    token (3.9 on stdlib docstrings), the ratio Google documents for Gemini models
    (https://ai.google.dev/gemini-api/docs/tokens); code to fewer (3.3 on this project's source),
    as with the real tokenizer, so that an estimate at 4 characters a token is not exact here either."""
    return max(1, len(_PIECE.findall(text))) if text else 0


def _texts(contents: Any) -> list[str]:
    if not isinstance(contents, list) or not contents:
        raise InvalidRequest("contents must be a non-empty list of Content objects")
    texts = []
    for i, content in enumerate(contents):
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            raise InvalidRequest(f"contents[{i}].parts must be a non-empty list")
        for part in parts:
            if not isinstance(part, dict):
                raise InvalidRequest(f"contents[{i}].parts holds a non-object")
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
    return texts


def request_text(request: dict[str, Any]) -> str:
    """All text of the request's ``contents``; raises InvalidRequest for a malformed request."""
    if not isinstance(request, dict):
        raise InvalidRequest("request must be a GenerateContentRequest object")
    return "\n".join(_texts(request.get("contents")))


def _is_prose(paragraph: str) -> bool:
    """Whether a paragraph (its lines as written) reads as prose, not code, a doctest, a list, a
    table or a "Label: value" heading: what a model would not summarize from."""
    lines = [line for line in paragraph.splitlines() if line.strip()]
    if not lines or _is_label(paragraph) or all(line[:1].isspace() for line in lines):  # indented: a code block
        return False
    if any(line.lstrip().startswith((">>>", "...", "$ ", "- ", "* ", "|", "#")) or _CODE_LINE.match(line)
           or _RULE.search(line) for line in lines):
        return False
    visible = "".join(paragraph.split())
    return sum(c.isalpha() for c in visible) >= 0.6 * len(visible)


def _is_label(paragraph: str) -> bool:
    return bool(_LABEL.fullmatch(paragraph.strip()))


def _prose(text: str) -> list[str]:
    """The text's prose paragraphs (``_is_prose``), each on one line; all its paragraphs but a
    "Label: value" line when it has no prose."""
    raw = [p for p in _PARAGRAPH.split(text) if p.strip() and not _is_label(p)] or [text]
    return [" ".join(p.split()) for p in ([p for p in raw if _is_prose(p)] or raw)]


def summarize(text: str) -> str:
    """The sentence whose content words are most frequent in the whole text, weighted by its place
    (the n-th counts 1/n: a lead sentence summarizes, as a docstring's first line does); the first
    one on ties. Only prose is summarized from
    (``_is_prose``), and sentences that fit ``MAX_SUMMARY_WORDS`` are preferred, as a model's one
    sentence would be; text without prose is summarized from all of it."""
    sentences = [s for p in _prose(text) for s in _SENTENCE_END.split(p) if s]
    if not sentences:
        return ""
    # A heading or label is no summary: prefer sentences of a few words, and not too many.
    sentences = [s for s in sentences if len(s.split()) >= MIN_SUMMARY_WORDS] or sentences
    sentences = [s for s in sentences if len(s.split()) <= MAX_SUMMARY_WORDS] or sentences
    freq = Counter(w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS)

    def score(sentence: str) -> float:
        words = [w for w in _WORD.findall(sentence.lower()) if w not in _STOPWORDS]
        return sum(freq[w] for w in words) / math.sqrt(len(words)) if words else 0.0

    weighted = [score(sentence) / (1 + position) for position, sentence in enumerate(sentences)]
    best = sentences[weighted.index(max(weighted))]  # index() finds the first of equal scores
    words = best.split()
    return " ".join(words[:MAX_SUMMARY_WORDS]) + (" ..." if len(words) > MAX_SUMMARY_WORDS else "")


def _terms(text: str) -> list[str]:
    """The text's content words, each cut to a crude stem (a plural's "s" dropped, then the first six
    letters) so that "file" and "files" or "compress" and "compression" meet."""
    return [w.removesuffix("s")[:6] for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def _choose(options: list[tuple[Any, str]], text: str) -> Any:
    """The value of the ``(value, what it means)`` option closest to the prompt in meaning, by Okapi BM25
    over the options' words (k1 1.2, b 0.75; a term's weight log(options / options using it), so words
    that every option uses decide nothing). The prompt's terms come from its prose (``_prose``), an
    occurrence in its n-th sentence counting 1/n, as its lead sentence says most of what it is about.
    A stable hash of the prompt picks among equals, as when no option shares a word with it."""
    documents = [Counter(_terms(meaning)) for _, meaning in options]
    frequency = Counter(term for document in documents for term in document)
    idf = {term: math.log(len(options) / n) for term, n in frequency.items()}
    average = sum(sum(document.values()) for document in documents) / len(documents) or 1.0
    sentences = [s for p in _prose(text) for s in _SENTENCE_END.split(p) if s]
    prompt: Counter[str] = Counter()
    for position, sentence in enumerate(sentences):
        for term in _terms(sentence):
            prompt[term] += 1 / (1 + position)

    def score(document: Counter[str]) -> float:
        damping = 1.2 * (0.25 + 0.75 * sum(document.values()) / average)  # k1 (1 - b + b * length / average)
        return sum(math.log1p(weight) * idf[term] * document[term] * 2.2 / (document[term] + damping)
                   for term, weight in prompt.items() if term in document)

    scores = [round(score(document), 9) for document in documents]
    best = max(scores)
    tied = [value for (value, _), found in zip(options, scores, strict=True) if found == best]
    return tied[int(hashlib.sha256(text.encode()).hexdigest(), 16) % len(tied)]


def _options(schema: dict[str, Any]) -> list[tuple[Any, str]] | None:
    """A schema's choices as ``(value, its words)``: each ``enum`` value, or each branch of an ``anyOf`` /
    ``oneOf`` that allows one value (``enum`` of one or ``const``) with its ``description`` and ``title``;
    None when the schema is not a choice of values."""
    if schema.get("enum"):
        return [(value, str(value)) for value in schema["enum"]]
    branches = schema.get("anyOf") or schema.get("oneOf") or []
    options = []
    for branch in branches:
        values = branch.get("enum") if isinstance(branch, dict) else None
        value = values[0] if isinstance(values, list) and len(values) == 1 else (branch or {}).get("const")
        if value is None:
            return None
        options.append((value, " ".join([str(value), *(str(branch.get(k, "")) for k in ("title", "description"))])))
    return options or None


def from_schema(schema: dict[str, Any], text: str, summary: str) -> Any:
    """A value valid against a Gemini ``Schema`` or a JSON schema, derived from the prompt: a choice of
    values (``enum``, or ``anyOf`` of one-value branches) is answered by meaning (``_choose``), any other
    ``anyOf`` / ``oneOf`` from its first branch that is not null."""
    if not isinstance(schema, dict):
        raise InvalidRequest("response_schema must be an object")
    options = _options(schema)
    if options:
        return _choose(options, text)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return from_schema(next((b for b in branches if b.get("type") != "null"), branches[0]), text, summary)
    kind = str(schema.get("type", "string")).lower()
    if isinstance(schema.get("type"), list):  # JSON schema union such as ["string", "null"]
        kind = next((str(t).lower() for t in schema["type"] if t != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: from_schema(sub, text, summary) for name, sub in props.items()}
    if kind == "array":
        return [from_schema(schema.get("items") or {}, text, summary)]
    if kind == "integer":
        return len(summary.split())
    if kind == "number":
        return round(len(summary.split()) / max(1, len(text.split())), 3)
    if kind == "boolean":
        return len(summary) % 2 == 0
    if kind == "null":
        return None
    return summary


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def generate(request: dict[str, Any], model: str, read_file: FileReader | None = None) -> dict[str, Any]:
    """A ``GenerateContentResponse`` (wire shape) for one request; raises InvalidRequest.

    A request with media is answered from them: what each one is (see ``media.describe``); its
    ``fileData`` parts are read with ``read_file``.
    """
    text = request_text(request)
    config = _get(request, "generationConfig", "generation_config") or {}
    if not isinstance(config, dict):
        raise InvalidRequest("generationConfig must be an object")
    media = media_of(request.get("contents"), read_file)
    summary = _sentence("; ".join(describe(mime, data) for mime, data in media)) if media else summarize(text)
    schema = _get(config, "responseJsonSchema", "response_json_schema") or _get(
        config, "responseSchema", "response_schema"
    )
    if _get(config, "responseMimeType", "response_mime_type") == "application/json":
        answer = json.dumps(from_schema(schema or {"type": "object", "properties": {"text": {}}}, text, summary))
    else:
        answer = summary
    # Past maxOutputTokens the answer stops where it is, JSON or not, and says so.
    finish = "STOP"
    max_tokens = _get(config, "maxOutputTokens", "max_output_tokens")
    if isinstance(max_tokens, int) and max_tokens > 0 and count_tokens(answer) > max_tokens:
        answer, finish = answer[: max_tokens * 4], "MAX_TOKENS"
    prompt_tokens = count_prompt(request, model, len(media))
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    thinking = _get(config, "thinkingConfig", "thinking_config") or {}
    thoughts = thoughts_tokens(model, thinking, prompt_tokens, digest)
    modalities = _modalities(config, model)
    parts: list[dict[str, Any]] = [{"text": answer}] if "TEXT" in modalities else []
    if "IMAGE" in modalities:
        parts.append({"inlineData": {"mimeType": "image/png", "data": base64.b64encode(picture(digest)).decode()}})
    if thoughts:  # a thinking model's answer: what it thought (asked for) first, its signature last
        if _get(thinking, "includeThoughts", "include_thoughts"):
            parts.insert(0, {"text": f"Thinking about: {summary}", "thought": True})
        parts.append({"thoughtSignature": base64.b64encode(bytes.fromhex(digest[:24])).decode()})
    text_tokens = count_tokens(answer) if "TEXT" in modalities else 0
    picture_tokens = PICTURE_TOKENS if "IMAGE" in modalities else 0
    usage: dict[str, Any] = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": text_tokens + picture_tokens,
                             "totalTokenCount": prompt_tokens + text_tokens + picture_tokens + thoughts}
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if picture_tokens:  # the split by modality, as the live API gives it for image answers
        usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": text_tokens},
                                            {"modality": "IMAGE", "tokenCount": picture_tokens}][not text_tokens:]
    return {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": 0}],
        "usageMetadata": usage,
        "modelVersion": model.removeprefix("models/"),
        "responseId": digest[:22],
    }


def count_prompt(request: dict[str, Any], model: str, media: int) -> int:
    """Prompt tokens of a ``GenerateContentRequest`` holding ``media`` media parts: its text's, its
    system instruction's, and each medium's at the request's ``mediaResolution``."""
    config = _get(request, "generationConfig", "generation_config") or {}
    system = _get(request, "systemInstruction", "system_instruction")
    text = count_tokens(request_text(request)) + (count_tokens("\n".join(_texts([system]))) if system else 0)
    return text + media_tokens(config, model) * media


def media_tokens(config: dict[str, Any], model: str) -> int:
    """Prompt tokens of one medium at the request's ``mediaResolution`` on ``model``."""
    level = _get(config, "mediaResolution", "media_resolution")
    if level in (None, "MEDIA_RESOLUTION_UNSPECIFIED"):
        return MEDIA_TOKENS
    family = "gemini-3" if model.removeprefix("models/").startswith("gemini-3") else "gemini-2"
    table = MEDIA_RESOLUTION_TOKENS[family]
    if level not in table:
        raise InvalidRequest(f"generationConfig.mediaResolution: unknown value {level!r}; one of {', '.join(table)}")
    return table[level]


def _modalities(config: dict[str, Any], model: str) -> set[str]:
    """What the answer holds (``responseModalities``, default text); InvalidRequest, as the live API
    answers, for images asked of a model that draws none (only image models do)."""
    asked = _get(config, "responseModalities", "response_modalities") or ["TEXT"]
    if not isinstance(asked, list) or not asked:
        raise InvalidRequest("responseModalities must be a non-empty list")
    modalities = {str(m).upper() for m in asked}
    if unknown := modalities - {"TEXT", "IMAGE"}:
        raise InvalidRequest("Model does not support the requested response modalities: "
                             + ", ".join(sorted(unknown)).lower())
    if "IMAGE" in modalities and "image" not in model:
        raise InvalidRequest("Model does not support the requested response modalities: image")
    return modalities


def thoughts_tokens(model: str, thinking: dict[str, Any], prompt_tokens: int, digest: str) -> int:
    """How many tokens a request thinks: none for a model that does not think by default (Flash-Lite
    2.5, image models) unless given a budget; else about as many as the prompt has plus 256, between
    half and one and a half times that from request to request (a stable draw from ``digest``),
    within the request's ``thinkingBudget`` or ``thinkingLevel`` or the model's default cap."""
    budget = _get(thinking, "thinkingBudget", "thinking_budget")
    level = str(_get(thinking, "thinkingLevel", "thinking_level") or "").upper()
    name = model.removeprefix("models/")
    if isinstance(budget, int) and budget >= 0:
        cap = budget
    elif level in THINKING_LEVEL_CAP:
        cap = THINKING_LEVEL_CAP[level]
    else:
        cap = DEFAULT_THINKING_CAP.get(name, THINKING_LEVEL_CAP["HIGH"] if budget == -1 else 0)
    draw = 0.5 + int(digest[-8:], 16) / 0xFFFFFFFF  # 0.5 to 1.5
    return min(cap, round((prompt_tokens + 256) * draw))


def embed(request: dict[str, Any]) -> dict[str, Any]:
    """An ``EmbedContentResponse`` (wire shape) for one ``EmbedContentRequest``; raises InvalidRequest."""
    if not isinstance(request, dict):
        raise InvalidRequest("request must be an EmbedContentRequest object")
    text = "\n".join(_texts([request.get("content")]))
    size = _get(request, "outputDimensionality", "output_dimensionality") or EMBEDDING_DIMENSIONS
    if not isinstance(size, int) or not 1 <= size <= EMBEDDING_DIMENSIONS:
        raise InvalidRequest(f"outputDimensionality must be an integer from 1 to {EMBEDDING_DIMENSIONS}")
    vector = [0.0] * size
    for word in [*_WORD.findall(text.lower()), text]:  # the whole text too: no text embeds as zeros
        digest = hashlib.sha256(word.encode()).digest()
        for i in range(0, 32, 4):  # eight signed dimensions a word
            vector[int.from_bytes(digest[i : i + 3], "big") % size] += 1.0 if digest[i + 3] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return {"embedding": {"values": [round(v / norm, 6) for v in vector]}}
