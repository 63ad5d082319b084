"""Token estimates made before anything is sent (for the TPM limiter, the batch token budget and the
cost estimate)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import islice
from typing import TYPE_CHECKING, Any, NamedTuple

from .limits import MEDIA_TOKENS

if TYPE_CHECKING:
    from .backend import BatchBackend

# Thinking (https://ai.google.dev/gemini-api/docs/thinking, 2026-11): Gemini 2.5 and 3 models think
# by default and bill the thoughts as output. Gemini 3 takes thinkingLevel (default HIGH), 2.5 a
# thinkingBudget in tokens (-1: dynamic, the default; 0: off, which 2.5 Pro refuses). The caps
# below are the most a request thinks at each setting; how much it thinks within the cap depends on
# the prompt, for which THOUGHTS_BEYOND_PROMPT is the rule of thumb.
THINKING_LEVEL_CAP = {"MINIMAL": 0, "LOW": 1024, "MEDIUM": 4096, "HIGH": 16384, "XHIGH": 32768}
DYNAMIC_THINKING_CAP = {"gemini-2.5-pro": 32768, "gemini-2.5-flash": 24576}
THOUGHTS_BEYOND_PROMPT = 256  # a thinking model thinks about as many tokens as its prompt has, and this many more
# Tokens of one image or document part at each generationConfig.mediaResolution, Gemini 3 and 2.5
# (https://ai.google.dev/gemini-api/docs/media-resolution, 2026-11); MEDIA_TOKENS when it is not set.
MEDIA_RESOLUTION_TOKENS = {
    "gemini-3": {"MEDIA_RESOLUTION_LOW": 280, "MEDIA_RESOLUTION_MEDIUM": 560, "MEDIA_RESOLUTION_HIGH": 1120},
    "gemini-2": {"MEDIA_RESOLUTION_LOW": 64, "MEDIA_RESOLUTION_MEDIUM": 256, "MEDIA_RESOLUTION_HIGH": 256},
}
# An answer's picture, up to 1024x1024 pixels (https://ai.google.dev/gemini-api/docs/pricing, image output, 2026-11).
PICTURE_TOKENS = 1290


class TokenSplit(NamedTuple):
    """A request's estimated tokens: its prompt's, its answer's text, its thinking and its pictures."""

    prompt: int
    output: int
    thinking: int = 0
    pictures: int = 0


def thinking_cap(model: str | None, config: dict[str, Any]) -> int:
    """The most thinking tokens a request to ``model`` with ``generationConfig`` ``config`` may
    spend: its ``thinkingConfig``'s budget or level, else the model's default (none for models that
    don't think by default: Flash-Lite 2.5, image and embedding models, unknown ones)."""
    thinking = config.get("thinkingConfig") or {}
    budget = thinking.get("thinkingBudget")
    name = (model or "").rsplit("/", 1)[-1]
    if isinstance(budget, int) and budget >= 0:
        return budget
    level = str(thinking.get("thinkingLevel") or "").upper()
    if level in THINKING_LEVEL_CAP:
        return THINKING_LEVEL_CAP[level]
    if name.startswith("gemini-3") and "image" not in name:
        return THINKING_LEVEL_CAP["HIGH"]
    return DYNAMIC_THINKING_CAP.get(name, THINKING_LEVEL_CAP["HIGH"] if budget == -1 else 0)


def media_tokens(model: str | None, config: dict[str, Any]) -> int:
    """Prompt tokens of one image or document part at ``config``'s ``mediaResolution`` on ``model``."""
    level = config.get("mediaResolution")
    family = "gemini-3" if (model or "").rsplit("/", 1)[-1].startswith("gemini-3") else "gemini-2"
    table = MEDIA_RESOLUTION_TOKENS[family]
    return table.get(str(level), MEDIA_TOKENS)


def estimate_split(request: dict[str, Any], model: str | None = None) -> TokenSplit:
    """The tokens a ``GenerateContentRequest`` (wire shape) to ``model`` will cost: its prompt at 4
    characters a token (Google's rule of thumb, https://ai.google.dev/gemini-api/docs/tokens) and
    ``media_tokens`` per image or document part; its ``maxOutputTokens`` of answer text (or as
    many as the prompt's when it sets none); for a model that thinks, as many thinking tokens as
    the prompt's plus ``THOUGHTS_BEYOND_PROMPT``, within ``thinking_cap`` (no model given: no
    thinking); and ``PICTURE_TOKENS`` when its ``responseModalities`` ask for an image.
    An ``EmbedContentRequest`` (one ``content``) has no output tokens."""
    if "content" in request:
        return TokenSplit(math.ceil(sum(len(part.get("text", "")) for part in request["content"]["parts"]) / 4), 0)
    chars = media = 0
    for content in request.get("contents", []):
        for part in content["parts"]:
            if "text" in part:
                chars += len(part["text"])
            elif "inlineData" in part or "fileData" in part:
                media += 1
    system = request.get("systemInstruction") or {}
    chars += sum(len(part.get("text", "")) for part in system.get("parts", []))
    config = request.get("generationConfig") or {}
    prompt = math.ceil(chars / 4) + media_tokens(model, config) * media
    thinking = min(thinking_cap(model, config), prompt + THOUGHTS_BEYOND_PROMPT) if model else 0
    modalities = {str(m).upper() for m in config.get("responseModalities") or ["TEXT"]}
    output = int(config.get("maxOutputTokens") or prompt) if "TEXT" in modalities else 0
    return TokenSplit(prompt, output, thinking, PICTURE_TOKENS if "IMAGE" in modalities else 0)


def estimate_tokens(request: dict[str, Any], model: str | None = None) -> int:
    """All the tokens of ``estimate_split`` together."""
    return sum(estimate_split(request, model))


def prompt_ratio(requests: Iterable[dict[str, Any]], model: str, backend: BatchBackend, rows: int) -> float | None:
    """How many times the rule of thumb's prompt tokens the API counts: ``backend.count_tokens``
    (``countTokens`` on a request's ``contents``) over ``estimate_split``'s prompt for the same contents, summed over
    the first ``rows`` requests that hold only text and inline media (files not yet uploaded can't
    be counted). None when no request could be counted."""
    counted = estimated = 0
    for request in islice((r for r in requests if _countable(r)), rows):
        counted += backend.count_tokens(model, request["contents"])
        estimated += estimate_split({"contents": request["contents"]}, model).prompt
    return counted / estimated if estimated else None


def _countable(request: dict[str, Any]) -> bool:
    return "contents" in request and all("fileData" not in part for content in request["contents"]
                                         for part in content["parts"])
