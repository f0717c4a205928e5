"""One error body for every 4xx and 5xx answer: RFC 9457 problem details.

Every failure the API reports, whoever raises it (request validation, a route, the API
key check, Starlette's routing, an unexpected exception), leaves as
``application/problem+json``::

    {"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
     "detail": "body.symbols[1]: invalid symbol 'bad symbol!': only letters, ...",
     "code": "invalid_symbol"}

``title`` is the status's reason phrase; ``detail`` one line a person can act on;
``code`` a stable snake_case value a program can branch on (:class:`ErrorCode`);
``errors`` lists each field problem, only when there are several; an endpoint may add
members of its own (the 409 of ``POST /api/v1/subscribe`` adds ``refused_symbols`` and
``total_subscriptions``).

Routes raise :class:`ProblemError`; :func:`install_problem_handlers` turns everything
into these bodies, and :func:`document_problems` makes the OpenAPI document say so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from apps.market_data_service.api.problems import (
    PROBLEM_MEDIA_TYPE,
    ErrorCode,
    FieldProblem,
    Problem,
    ProblemError,
    SubscriptionRefused,
    problem_response,
    reason_phrase,
)
from libs.market_data import InvalidSymbolError, MarketDataError
from libs.market_data.exceptions import LeadershipError

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ErrorCode",
    "FieldProblem",
    "Problem",
    "ProblemError",
    "SubscriptionRefused",
    "describe_value",
    "document_problems",
    "install_problem_handlers",
    "problem_response",
    "problems",
    "symbol_message",
]

logger = logging.getLogger(__name__)

# A value shown in a message is cut past this many characters.
_SHOWN_MAX: Final = 100
# In a one-line detail, the field problems named before "and N more".
_DETAIL_MAX_PROBLEMS: Final = 3

_CODE_OF_STATUS: Final[Mapping[int, ErrorCode]] = {
    400: ErrorCode.INVALID_JSON,  # FastAPI's only 400: a body it cannot parse
    401: ErrorCode.UNAUTHORIZED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    422: ErrorCode.INVALID_REQUEST,
    500: ErrorCode.INTERNAL_ERROR,
    502: ErrorCode.BROKER_ERROR,
}

# -- messages ----------------------------------------------------------------------------------


def describe_value(value: object) -> str:
    """``value`` for a message: its repr, cut past ``_SHOWN_MAX`` characters."""
    if isinstance(value, str) and len(value) > _SHOWN_MAX:
        return f"{value[:20]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= _SHOWN_MAX else f"{text[:_SHOWN_MAX]}..."


def symbol_message(exc: InvalidSymbolError) -> str:
    """An invalid symbol's message, the symbol shown but never at full length."""
    return f"invalid symbol {describe_value(exc.symbol)}: {exc.why}"


def _location(loc: Iterable[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _field_problem(
    error: Mapping[str, Any], allowed: Sequence[str]
) -> tuple[ErrorCode, FieldProblem]:
    """One pydantic/FastAPI validation error as a code and a readable message."""
    kind: str = error.get("type", "")
    loc: tuple[int | str, ...] = tuple(error.get("loc", ()))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    given = error.get("input")
    code = ErrorCode.INVALID_REQUEST
    if kind == "json_invalid":
        # FastAPI puts the character position after "body".
        position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        where = f" at character {position}" if position is not None else ""
        return ErrorCode.INVALID_JSON, FieldProblem(
            location="body", message=f"not valid JSON{where}: {ctx.get('error', 'cannot parse')}"
        )
    location = _location(loc)
    if kind == "invalid_symbol":
        code, message = ErrorCode.INVALID_SYMBOL, str(error.get("msg", ""))
    elif kind == "extra_forbidden":
        code = ErrorCode.UNKNOWN_FIELD
        name = loc[-1] if loc else "?"
        message = f"unknown field {describe_value(name)}"
        if allowed:
            message += f" (the body takes: {', '.join(allowed)})"
    elif kind == "missing":
        message = "a JSON body is required" if loc == ("body",) else "is required"
    elif loc == ("body",) and isinstance(given, bytes | bytearray):
        code = ErrorCode.INVALID_JSON
        message = "must be JSON, sent with Content-Type: application/json"
    elif loc == ("body",) and kind in ("model_attributes_type", "dict_type", "model_type"):
        message = f"must be a JSON object, got {_json_kind(given)}"
    elif kind == "too_short":
        message = f"needs at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}"
    elif kind == "too_long":
        message = f"takes at most {ctx.get('max_length')} items, got {ctx.get('actual_length')}"
    elif kind == "string_too_long":
        count = len(given) if isinstance(given, str) else "more"
        message = (
            f"at most {ctx.get('max_length')} characters, got {count}: {describe_value(given)}"
        )
    else:
        message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
        message = message.replace("Input should be", "must be", 1)
        if isinstance(given, str | int | float | bool) or given is None:
            message += f", got {describe_value(given)}"
    if loc[:2] == ("path", "symbol"):
        code = ErrorCode.INVALID_SYMBOL
    return code, FieldProblem(location=location, message=message)


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


def _body_fields(request: Request) -> list[str]:
    """The fields the matched route's body model takes (for "unknown field" messages)."""
    body_field = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(body_field, "field_info", None), "annotation", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _validation_problem(errors: Sequence[Any], allowed: Sequence[str] = ()) -> JSONResponse:
    """A 422 naming every field problem; one code when they agree, else invalid_request."""
    found = [_field_problem(e, allowed) for e in errors if isinstance(e, Mapping)]
    if not found:
        found = [(ErrorCode.INVALID_REQUEST, FieldProblem(location="request", message="invalid"))]
    codes = {code for code, _ in found}
    code = codes.pop() if len(codes) == 1 else ErrorCode.INVALID_REQUEST
    items = [problem for _, problem in found]
    lines = [f"{p.location}: {p.message}" for p in items[:_DETAIL_MAX_PROBLEMS]]
    if len(items) > _DETAIL_MAX_PROBLEMS:
        lines.append(f"and {len(items) - _DETAIL_MAX_PROBLEMS} more (see errors)")
    detail = "; ".join(lines)
    if len(items) > 1:
        detail = f"{len(items)} problems: {detail}"
    return problem_response(422, detail, code, errors=items)


def _http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    headers = getattr(exc, "headers", None)
    if isinstance(exc, ProblemError):
        return problem_response(
            status, str(exc.detail), exc.code, headers=headers, **exc.extensions
        )
    code = _CODE_OF_STATUS.get(status, ErrorCode.HTTP_ERROR)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    path = request.url.path
    if len(path) > _SHOWN_MAX:
        path = f"{path[:_SHOWN_MAX]}..."
    if status == 404 and detail == reason_phrase(404):
        detail = f"no endpoint {request.method} {path}; the API is listed at /docs"
    elif status == 405 and detail == reason_phrase(405):
        allowed = (headers or {}).get("Allow") or (headers or {}).get("allow")
        detail = f"{request.method} is not allowed on {path}"
        if allowed:
            detail += f"; allowed: {allowed}"
    elif status == 400 and detail == "There was an error parsing the body":
        detail = "the body cannot be read: send UTF-8 JSON with Content-Type: application/json"
    return problem_response(status, detail, code, headers=headers)


# -- wiring ------------------------------------------------------------------------------------


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem details."""

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return _http_problem(request, exc)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _validation_problem(exc.errors(), _body_fields(request))

    async def market_data_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, InvalidSymbolError):  # bad input, wherever it is caught
            return problem_response(422, symbol_message(exc), ErrorCode.INVALID_SYMBOL)
        if isinstance(exc, LeadershipError):  # a standby without a leader (docs/leadership.md)
            return problem_response(503, str(exc), ErrorCode.NO_LEADER)
        # The broker answered a request with an error the endpoint does not map itself
        # (406, 407, 500, a broken reply ...): a gateway error naming it, never a bare 500.
        logger.warning("%s %s failed: %s", request.method, request.url.path, exc)
        return problem_response(
            502,
            f"the market data broker answered with an error: {exc}",
            ErrorCode.BROKER_ERROR,
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this answer, so the server logs it with
        # its traceback; the client gets no internals (the text might hold anything).
        return problem_response(
            500,
            "an unexpected error occurred; it was logged on the server",
            ErrorCode.INTERNAL_ERROR,
        )

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(MarketDataError, market_data_error)
    app.add_exception_handler(Exception, unexpected)


def problems(
    descriptions: Mapping[int, str], model: type[Problem] = Problem
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries declaring problem bodies for the given statuses."""
    return {status: {"model": model, "description": text} for status, text in descriptions.items()}


def document_problems(app: FastAPI) -> None:
    """Declare problem bodies as ``application/problem+json`` in the OpenAPI document.

    FastAPI files every ``responses={...: {"model": ...}}`` under the route's media type
    (``application/json``); this moves those of the problem models where they belong.
    """
    build: Callable[[], dict[str, Any]] = app.openapi
    models: list[type[Problem]] = [Problem, *Problem.__subclasses__()]
    names = {model.__name__ for model in models}

    def openapi() -> dict[str, Any]:
        schema = build()
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if not isinstance(operation, dict):
                    continue
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                    if str(status)[:1] in "45" and ref.rsplit("/", 1)[-1] in names:
                        content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
