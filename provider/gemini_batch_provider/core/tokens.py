"""Token estimates made before anything is sent (for the TPM limiter and the batch token budget)."""

from __future__ import annotations

import math
from typing import Any

from .media import MEDIA_TOKENS


def estimate_split(request: dict[str, Any]) -> tuple[int, int]:
    """``(prompt, output)`` tokens a ``GenerateContentRequest`` (wire shape) will cost, estimated at
    4 characters a token (Google's rule of thumb, https://ai.google.dev/gemini-api/docs/tokens) for
    its text, ``MEDIA_TOKENS`` per image or document part, and its ``maxOutputTokens`` (or as many
    output tokens as input when it sets none).
    An ``EmbedContentRequest`` (one ``content``) has no output tokens."""
    if "content" in request:
        return math.ceil(sum(len(part.get("text", "")) for part in request["content"]["parts"]) / 4), 0
    chars = media = 0
    for content in request.get("contents", []):
        for part in content["parts"]:
            if "text" in part:
                chars += len(part["text"])
            elif "inlineData" in part or "fileData" in part:
                media += 1
    system = request.get("systemInstruction") or {}
    chars += sum(len(part.get("text", "")) for part in system.get("parts", []))
    prompt = math.ceil(chars / 4) + MEDIA_TOKENS * media
    return prompt, int((request.get("generationConfig") or {}).get("maxOutputTokens") or prompt)


def estimate_tokens(request: dict[str, Any]) -> int:
    """Prompt and output tokens of ``estimate_split`` together."""
    return sum(estimate_split(request))
