"""The problem-details bodies (RFC 9457) every 4xx and 5xx answer of the API carries.

The shapes only: :mod:`~apps.market_data_service.api.errors` turns every failure into
one of these and says so in the OpenAPI document.
"""

from __future__ import annotations

import http
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Final

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ErrorCode",
    "FieldProblem",
    "Problem",
    "ProblemError",
    "SubscriptionRefused",
    "problem_response",
    "reason_phrase",
]

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"


class ErrorCode(StrEnum):
    """The machine-readable ``code`` of a problem. Values are stable."""

    INVALID_REQUEST = "invalid_request"  # a parameter or the body breaks a rule
    INVALID_JSON = "invalid_json"  # the body is not (UTF-8) JSON
    INVALID_SYMBOL = "invalid_symbol"  # not a ticker
    UNKNOWN_FIELD = "unknown_field"  # a body field the endpoint does not take
    UNAUTHORIZED = "unauthorized"  # the API key is missing or wrong
    NOT_FOUND = "not_found"  # no such endpoint, no such subscription, no cached price
    METHOD_NOT_ALLOWED = "method_not_allowed"
    SUBSCRIPTION_REFUSED = "subscription_refused"  # the broker refused symbols (409)
    NOT_READY = "not_ready"  # /health/ready: the service cannot serve yet
    REDIS_UNAVAILABLE = "redis_unavailable"
    BROKER_ERROR = "broker_error"  # the broker answered with an error (502)
    NO_LEADER = "no_leader"  # a standby found no live leader to apply a change (503)
    INTERNAL_ERROR = "internal_error"  # a bug: logged with its traceback
    HTTP_ERROR = "http_error"  # any other status the HTTP layer answers


# -- the bodies ------------------------------------------------------------------------------


class FieldProblem(BaseModel):
    """One problem with one part of the request."""

    location: str = Field(
        description=(
            "Where: `body`, `body.<field>`, `body.<field>[<index>]`, `path.<name>` or "
            "`query.<name>`."
        ),
        examples=["body.symbols[1]"],
    )
    message: str = Field(
        description="What is wrong there, in one line.",
        examples=["invalid symbol 'bad symbol!': only letters, digits, '.' and '/' ..."],
    )


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every 4xx and 5xx answer
    (``application/problem+json``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Unprocessable Entity",
                    "status": 422,
                    "detail": "body.bars: unknown field 'bars' (the body takes: symbols)",
                    "code": "unknown_field",
                }
            ]
        }
    )

    type: str = Field(
        default="about:blank",
        description="A URI naming the problem type; `about:blank`: the status says it all.",
        examples=["about:blank"],
    )
    title: str = Field(
        description="The HTTP status's reason phrase.", examples=["Unprocessable Entity"]
    )
    status: int = Field(description="The HTTP status code, repeated.", examples=[422])
    detail: str = Field(
        description="What went wrong, in one line a person can act on.",
        examples=["path.symbol: invalid symbol 'AAPL!': only letters, digits, '.' and '/' ..."],
    )
    code: ErrorCode = Field(
        description="A stable machine-readable code to branch on.", examples=["invalid_symbol"]
    )
    errors: list[FieldProblem] | None = Field(
        default=None,
        description="Each field problem, present only when the request has several.",
    )


class SubscriptionRefused(Problem):
    """The 409 of ``POST /api/v1/subscribe``: the broker refused some symbols."""

    refused_symbols: list[str] = Field(
        description="The symbols the broker refused, sorted; none of them was added.",
        examples=[["NVDA", "TSLA"]],
    )
    total_subscriptions: int = Field(
        description="Symbols subscribed after the refusal (the earlier ones stand).",
        examples=[2],
    )


class ProblemError(HTTPException):
    """An HTTP error with its problem code and any extension members of its body."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        code: ErrorCode,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(status_code, detail, dict(headers) if headers else None)
        self.code = code
        self.extensions = extensions


def problem_response(
    status: int,
    detail: str,
    code: ErrorCode,
    *,
    errors: Sequence[FieldProblem] = (),
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """The problem details answer: ``errors`` only when there are several."""
    body = Problem(
        title=reason_phrase(status),
        status=status,
        detail=detail,
        code=code,
        errors=list(errors) if len(errors) > 1 else None,
    ).model_dump(mode="json", exclude_none=True)
    body.update(extensions)
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE
    )


def reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"
