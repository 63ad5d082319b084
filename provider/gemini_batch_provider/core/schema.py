"""Structured output: the JSON every row's answer must be, and each answer checked against it.

The schema is given as a pydantic model class or as a JSON schema (a dict). It goes to Gemini as
``generationConfig.responseMimeType = "application/json"`` with ``responseJsonSchema`` (Gemini's
structured output: https://ai.google.dev/gemini-api/docs/structured-output), and each ``succeeded``
row's text is parsed and validated into the row's ``parsed`` field. An answer that is not JSON or
does not validate gets status ``invalid_output`` and the reason in ``error``; its ``text`` is kept.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson
import pydantic

from .errors import AnswerInvalid, InputError
from .vocabulary import RowStatus

ResponseSchema = type[pydantic.BaseModel] | dict[str, Any]


class OutputSchema:
    """A response schema, checked when the operator is built; validates answers.

    :param schema: a pydantic model class, or a JSON schema dict (any draft ``jsonschema`` knows;
        2020-12 when it names none).
    :raises InputError: for anything else, or a JSON schema that is not a valid schema.
    """

    def __init__(self, schema: ResponseSchema) -> None:
        if isinstance(schema, type) and issubclass(schema, pydantic.BaseModel):
            self.model: type[pydantic.BaseModel] | None = schema
            self.json_schema = schema.model_json_schema()
            return
        if not isinstance(schema, dict):
            raise InputError(f"response_schema must be a pydantic model class or a JSON schema dict, "
                             f"got {type(schema).__name__}")
        validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise InputError(f"response_schema is not a valid JSON schema: {exc.message} "
                             f"(at {'/'.join(map(str, exc.path)) or 'the top'})") from None
        self.model = None
        self.json_schema = schema
        self._validator = validator(schema)

    def generation_config(self) -> dict[str, Any]:
        """The ``GenerationConfig`` fields that ask Gemini for JSON of this schema."""
        return {"response_mime_type": "application/json", "response_json_schema": self.json_schema}

    def parse(self, text: str) -> Any:
        """The answer as a JSON value valid against the schema; raises AnswerInvalid with the reason."""
        if self.model is not None:
            try:
                return self.model.model_validate_json(text).model_dump(mode="json")
            except pydantic.ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(map(str, first["loc"])) or "the top"
                raise AnswerInvalid(f"{first['msg']} (at {where}; {exc.error_count()} error(s) in all)") from None
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise AnswerInvalid(f"not JSON: {exc}") from None
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(value))
        if error is not None:
            raise AnswerInvalid(f"{error.message} (at {'/'.join(map(str, error.path)) or 'the top'})")
        return value

    def check(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` with ``parsed`` set, or turned ``invalid_output``; rows that did not succeed pass as they are."""
        if row["status"] != RowStatus.SUCCEEDED:
            return row
        try:
            if row.get("finish_reason") == "MAX_TOKENS":  # JSON cut short may still parse, as less than was meant
                raise AnswerInvalid("the answer was cut short at max_output_tokens (finishReason MAX_TOKENS); raise "
                                 "max_output_tokens")
            return {**row, "parsed": self.parse(row["text"])}
        except AnswerInvalid as exc:
            reason = f"the answer does not match response_schema: {exc}"
            return {**row, "status": str(RowStatus.INVALID_OUTPUT), "error": {"code": None, "message": reason,
                                                                 "status": "INVALID_OUTPUT"}}
