"""What a run costs, in US dollars: estimated before anything is sent, actual from each row's usage.

The prices are a data file, ``data/prices.toml`` (each model's figures with their source and
date, from https://ai.google.dev/gemini-api/docs/pricing): text prompt tokens, audio prompt tokens,
cached prompt tokens, output tokens (thinking included: ``thoughtsTokenCount`` is billed as
output), image output tokens, and a long-context tier for a request whose prompt is over a size.
The Batch API charges half (https://ai.google.dev/gemini-api/docs/batch-mode). A deployment's own
file (``prices_file``, same shape) and an operator's ``prices`` override the shipped table, in that
order. A model without a price gets no cost (None), never a guess.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InputError
from .tokens import TokenSplit, estimate_split

BATCH_DISCOUNT = 0.5
#: Each online service tier's price, as a share of the Standard one (https://ai.google.dev/gemini-api/docs/flex-inference
#: and https://ai.google.dev/gemini-api/docs/optimization, read December 2026): Flex charges the batch price; Priority
#: 75-100% more than Standard, taken at 100% so that an estimate or a budget is never under.
TIER_PRICE_FACTOR = {"standard": 1.0, "flex": BATCH_DISCOUNT, "priority": 2.0}
PRICES_FILE = Path(__file__).parents[1] / "data" / "prices.toml"
_RATES = ("input", "output", "cached", "input_audio", "output_image")
PRICED_ONE_BY_ONE_ABOVE = 32_000  # prompt tokens: no long-context tier may start below


def _rate(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"{name} must be a finite number of US dollars per million tokens, zero or more, "
                         f"got {value!r}")


@dataclass(frozen=True)
class LongContext:
    """The prices of a request whose prompt has more than ``above_prompt_tokens`` tokens (None: as
    the short-context price)."""

    above_prompt_tokens: int
    input: float | None = None
    output: float | None = None
    cached: float | None = None

    def __post_init__(self) -> None:
        above = self.above_prompt_tokens
        if isinstance(above, bool) or not isinstance(above, int) or above < PRICED_ONE_BY_ONE_ABOVE:
            raise InputError(f"above_prompt_tokens must be a whole number of tokens from {PRICED_ONE_BY_ONE_ABOVE}, "
                             f"got {above!r}")
        for name in ("input", "output", "cached"):
            if getattr(self, name) is not None:
                _rate(f"long_context.{name}", getattr(self, name))


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per million tokens: ``input`` (text, image, video prompt tokens), ``output``
    (answer and thinking tokens), ``cached`` (prompt tokens from a context cache); ``input_audio``
    and ``output_image`` where the model prices them apart (None: as ``input`` / ``output``); the
    ``long_context`` tier (None: one tier); where the figures come from and when (``source``,
    ``as_of``).

    :raises InputError: (a ValueError) for a figure that is not a finite number of dollars, zero or more.
    """

    input: float
    output: float
    cached: float
    input_audio: float | None = None
    output_image: float | None = None
    long_context: LongContext | None = None
    source: str = ""
    as_of: str = ""

    def __post_init__(self) -> None:
        for name in _RATES:
            if getattr(self, name) is not None or name in ("input", "output", "cached"):
                _rate(name, getattr(self, name))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ModelPrice:
        """A price from a table of ``prices.toml`` or an operator's ``prices`` entry.

        :raises InputError: (a ValueError) for an unknown field, a missing rate, or a figure that is not a price.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown field(s) {unknown}; a price has {sorted(known)}")
        missing = [name for name in ("input", "output", "cached") if name not in values]
        if missing:
            raise InputError(f"missing {missing}")
        long = values.get("long_context")
        try:
            return cls(**{**values, "long_context": LongContext(**long) if long is not None else None})
        except TypeError as exc:
            raise InputError(str(exc)) from None

    def rates(self, prompt_tokens: int) -> tuple[float, float, float]:
        """``(input, output, cached)`` for a request of ``prompt_tokens``: the long-context tier's
        where the prompt is over its size."""
        tier = self.long_context
        if tier is None or prompt_tokens <= tier.above_prompt_tokens:
            return self.input, self.output, self.cached
        return (tier.input if tier.input is not None else self.input,
                tier.output if tier.output is not None else self.output,
                tier.cached if tier.cached is not None else self.cached)


def _table(data: Mapping[str, Any], where: str) -> dict[str, ModelPrice]:
    """``data``'s prices by model; an InputError names ``where`` (``{model}`` in it: the model) and the fix."""
    table = {}
    for model, values in data.items():
        try:
            table[model] = ModelPrice.from_mapping(values)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where.format(model=repr(model))} is not a price ({exc}); give at least "
                             "{'input': $, 'output': $, 'cached': $} in US dollars per million tokens") from None
    return table


@functools.cache
def load_prices(path: str | Path = PRICES_FILE) -> dict[str, ModelPrice]:
    """The prices of a TOML file of ``prices.toml``'s shape, by model id.

    :raises InputError: for a file that can't be read, is not TOML, or holds something not a price.
    """
    import tomllib  # here: the table is read when a price is first asked, not when a DAG file is parsed

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise InputError(f"prices file {path} can't be read ({exc.strerror}); fix [gemini_batch] prices_file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"prices file {path} is not TOML ({exc})") from None
    where = str(path).replace("{", "{{").replace("}", "}}")  # a path is no format string
    return _table(data, f"prices file {where}: {{model}}")


def __getattr__(name: str) -> dict[str, ModelPrice]:
    """``PRICES``, the shipped table by model id, read on first use (PEP 562)."""
    if name == "PRICES":
        return load_prices()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_prices(prices: Mapping[str, Mapping[str, Any]]) -> dict[str, ModelPrice]:
    """An operator's ``prices`` as ``ModelPrice`` by model id; raises InputError naming the model."""
    return _table(prices, "prices[{model}]")


def price_of(model: str, overrides: Mapping[str, Mapping[str, Any]] | None = None,
             prices_file: str | None = None) -> ModelPrice | None:
    """The price of ``model`` (``models/`` and ``publishers/google/models/`` prefixes ignored): from
    ``overrides`` (an operator's ``prices``), else the deployment's ``prices_file``, else ``PRICES``."""
    name = model.rsplit("/", 1)[-1]
    if overrides and name in overrides:
        return ModelPrice.from_mapping(overrides[name])
    if prices_file:
        found = load_prices(prices_file).get(name)
        if found is not None:
            return found
    return load_prices().get(name)


def _modality(details: Any, modality: str) -> int:
    """Tokens of ``modality`` in a ``*_tokens_details`` list (``[{"modality", "token_count"}]``)."""
    if not isinstance(details, list):
        return 0
    return sum(int(d.get("token_count") or 0) for d in details
               if isinstance(d, dict) and str(d.get("modality", "")).upper() == modality)


def cost_usd(usage: Mapping[str, Any], price: ModelPrice, batch: bool) -> float:
    """The cost of one request's ``usage`` (``usage_metadata`` fields, snake_case, with its
    ``prompt_tokens_details`` / ``candidates_tokens_details`` where given) at ``price``: at the
    price of the service tier that served it (``usage["service_tier"]``, ``TIER_PRICE_FACTOR``),
    else halved for ``batch`` (the Batch API, or the Flex path when the answer names no tier). Its
    prompt size picks the long-context tier; audio prompt tokens and image answer tokens take their
    own prices; thinking tokens are output."""
    prompt = int(usage.get("prompt_token_count") or 0)
    cached = int(usage.get("cached_content_token_count") or 0)
    audio = _modality(usage.get("prompt_tokens_details"), "AUDIO") if price.input_audio is not None else 0
    output = int(usage.get("candidates_token_count") or 0) + int(usage.get("thoughts_token_count") or 0)
    image = _modality(usage.get("candidates_tokens_details"), "IMAGE") if price.output_image is not None else 0
    input_rate, output_rate, cached_rate = price.rates(prompt)
    dollars = ((prompt - cached - audio) * input_rate + audio * (price.input_audio or 0.0) + cached * cached_rate
               + (output - image) * output_rate + image * (price.output_image or 0.0)) / 1e6
    factor = TIER_PRICE_FACTOR.get(usage.get("service_tier"))
    return dollars * (factor if factor is not None else BATCH_DISCOUNT if batch else 1.0)


@dataclass
class Estimate:
    """Estimated tokens of a set of requests and, when the model has a price, their cost.

    Requests of up to ``PRICED_ONE_BY_ONE_ABOVE`` prompt tokens are counted together; larger ones
    are kept one by one, so that each is priced at its own tier (the long-context tiers start
    above that size).
    """

    requests: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0  # answer text, thinking and pictures
    thinking_tokens: int = 0
    picture_tokens: int = 0
    large: list[TokenSplit] = field(default_factory=list)

    def add(self, split: TokenSplit) -> None:
        """Count one request's estimated tokens (``estimate_split``)."""
        self.requests += 1
        self.prompt_tokens += split.prompt
        self.output_tokens += split.output + split.thinking + split.pictures
        self.thinking_tokens += split.thinking
        self.picture_tokens += split.pictures
        if split.prompt > PRICED_ONE_BY_ONE_ABOVE:
            self.large.append(split)

    def scaled(self, prompt_ratio: float) -> Estimate:
        """This estimate with its prompt tokens ``prompt_ratio`` times as many (``tokens.prompt_ratio``)."""
        return dataclasses.replace(self, prompt_tokens=round(self.prompt_tokens * prompt_ratio),
                                   large=[s._replace(prompt=round(s.prompt * prompt_ratio)) for s in self.large])

    def usd(self, price: ModelPrice | None, batch: bool, service_tier: str | None = None) -> float | None:
        """The estimated cost in US dollars, at the batch price, or at ``service_tier``'s
        (``TIER_PRICE_FACTOR``) where given; None without a price."""
        if price is None:
            return None
        pictures = self.picture_tokens - sum(s.pictures for s in self.large)
        small = TokenSplit(self.prompt_tokens - sum(s.prompt for s in self.large),  # text and thinking as output
                           self.output_tokens - sum(s.output + s.thinking + s.pictures for s in self.large) - pictures,
                           pictures=pictures)
        below = dataclasses.replace(price, long_context=None)  # each of the small ones is below any tier
        return _usd(small, below, batch, service_tier) + sum(_usd(s, price, batch, service_tier) for s in self.large)


def _usd(split: TokenSplit, price: ModelPrice, batch: bool, service_tier: str | None) -> float:
    """``cost_usd`` of estimated tokens (the output side of ``split`` counts its thinking and pictures)."""
    return cost_usd({"prompt_token_count": split.prompt,
                     "candidates_token_count": split.output + split.thinking + split.pictures,
                     "candidates_tokens_details": [{"modality": "IMAGE", "token_count": split.pictures}],
                     "service_tier": service_tier}, price, batch)


def estimate(requests: Iterable[tuple[str, dict[str, Any]]], model: str | None = None) -> Estimate:
    """The estimate of ``(key, request)`` pairs sent to ``model`` (its thinking counted, see ``estimate_split``)."""
    found = Estimate()
    for _, request in requests:
        found.add(estimate_split(request, model))
    return found
