"""What the API's bodies share: the ticker field, exact decimals as strings, limits."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Final

from fastapi import Path
from pydantic import (
    BeforeValidator,
    Field,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from apps.market_data_service.api.errors import symbol_message
from libs.market_data import InvalidSymbolError, normalize_symbol
from libs.market_data.symbols import MAX_SYMBOL_LENGTH, TICKER_PATTERN_ANY_CASE, WILDCARD
from libs.market_data.topics import normalize_topics

__all__ = [
    "DECIMAL_PATTERN",
    "MAX_SYMBOLS_PER_REQUEST",
    "SYMBOL_PATTERN",
    "DecimalString",
    "SubscribableSymbol",
    "Symbol",
    "SymbolPath",
]

MAX_SYMBOLS_PER_REQUEST: Final = 100
# What normalize_symbol accepts, for the OpenAPI document (and so for its fuzzer): a
# ticker in either case (the rule of libs.market_data.symbols), surrounded by the ASCII
# whitespace str.strip() removes. The runtime check stays normalize_symbol's, with its
# clearer messages; a test holds the two together.
_BLANK = r"[\t-\r\x1c-\x20]*"
SYMBOL_PATTERN: Final = rf"^{_BLANK}{TICKER_PATTERN_ANY_CASE}{_BLANK}$"

# str(Decimal) of a finite decimal: what every decimal of these bodies is sent as. An
# exponent appears for very small or very large values (Decimal("5E-8")).
DECIMAL_PATTERN: Final = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"
DecimalString = Annotated[
    Decimal, WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["150.15"]})
]


def _ticker(value: object) -> str:
    try:
        return normalize_symbol(value)
    except InvalidSymbolError as exc:
        # A custom error type, so the problem body says invalid_symbol, with this message
        # (passed as context: a symbol may hold braces).
        raise PydanticCustomError(
            "invalid_symbol", "{message}", {"message": symbol_message(exc)}
        ) from None


Symbol = Annotated[
    str,
    BeforeValidator(_ticker),
    Field(
        description=(
            f"A ticker: letters, digits, '.' and '/', at most {MAX_SYMBOL_LENGTH} characters; "
            "upper-cased, surrounding blanks ignored."
        ),
        examples=["AAPL"],
        json_schema_extra={"pattern": SYMBOL_PATTERN},
    ),
]


def _subscribable(value: object) -> str:
    if isinstance(value, str) and value.strip() == WILDCARD:
        return WILDCARD
    try:
        (topic,) = normalize_topics([value])  # the ticker rule, and no option symbols
    except InvalidSymbolError as exc:
        raise PydanticCustomError(
            "invalid_symbol", "{message}", {"message": symbol_message(exc)}
        ) from None
    return topic


# A ticker, a crypto pair or "*" (the whole market); option symbols refused (out of scope).
SubscribableSymbol = Annotated[
    str,
    BeforeValidator(_subscribable),
    Field(
        description=(
            f"A ticker (letters, digits, '.', at most {MAX_SYMBOL_LENGTH} characters), a "
            "crypto pair (`BTC/USD`, routed to the crypto feed) or `*` (every symbol of the "
            "stock feed); upper-cased, surrounding blanks ignored. Option symbols (OCC, "
            "`AAPL240621C00190000`) are refused: options are out of scope."
        ),
        examples=["AAPL"],
        json_schema_extra={"pattern": rf"^(?:{SYMBOL_PATTERN[1:-1]}|{_BLANK}\*{_BLANK})$"},
    ),
]


# The ``{symbol}`` path parameter of the routes that take one: the same rule as the body's.
SymbolPath = Annotated[
    str,
    Path(
        max_length=MAX_SYMBOL_LENGTH,
        description="The ticker, any case (`aapl`, `BRK.B`, `BTC/USD`).",
        examples=["AAPL"],
        json_schema_extra={"pattern": SYMBOL_PATTERN},
    ),
]
