"""What the commands print, from bodies the service sends: one line per error answer in
every shape the API has had (RFC 9457 problem details, FastAPI's ``{"detail": ...}``) or a
proxy might send (HTML, text), and tables people read (money, signs, yes/no, ages)."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console, RenderableType

from apps.market_data_service.cli.client import problem_line
from apps.market_data_service.cli.demo import demo_positions
from apps.market_data_service.cli.demo_board import Board as _Board
from apps.market_data_service.cli.demo_board import render_board as _render
from apps.market_data_service.cli.tables import age, health_table, money, pnl_table, signed
from libs.market_data import PriceData


def rendered(renderable: RenderableType, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


# -- error answers as one line ----------------------------------------------------------------

PROBLEM_422 = {
    "type": "about:blank",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": "2 problems: body.symbols[0]: invalid symbol '*': only letters ...; "
    "body.symbols[1]: invalid symbol '?': only letters ...",
    "code": "invalid_symbol",
    "errors": [
        {"location": "body.symbols[0]", "message": "invalid symbol '*': only letters ..."},
        {"location": "body.symbols[1]", "message": "invalid symbol '?': only letters ..."},
    ],
}
PROBLEM_422_MANY = {
    **PROBLEM_422,
    "detail": "4 problems: a: one; b: two; c: three; and 1 more (see errors)",
    "errors": [
        {"location": "a", "message": "one"},
        {"location": "b", "message": "two"},
        {"location": "c", "message": "three"},
        {"location": "d", "message": "four"},
    ],
}
PROBLEM_409 = {
    "type": "about:blank",
    "title": "Conflict",
    "status": 409,
    "detail": "the broker refused the subscription: symbol limit exceeded (405)",
    "code": "subscription_refused",
    "refused_symbols": ["NVDA", "TSLA"],
    "total_subscriptions": 2,
}
FASTAPI_422 = {
    "detail": [
        {
            "type": "value_error",
            "loc": ["body", "symbols"],
            "msg": "Value error, invalid symbol '*': only letters, digits, '.' and '/' ...",
            "input": ["*"],
            "ctx": {"error": {}},
        }
    ]
}
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
    "</html>\r\n"
)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            422,
            PROBLEM_422,
            "HTTP 422: 2 problems: body.symbols[0]: invalid symbol '*': only letters ...; "
            "body.symbols[1]: invalid symbol '?': only letters ...",
        ),
        (
            422,
            PROBLEM_422_MANY,
            "HTTP 422: 4 problems: a: one; b: two; c: three; and 1 more (see errors) (d: four)",
        ),
        (
            409,
            PROBLEM_409,
            "HTTP 409: the broker refused the subscription: symbol limit exceeded (405) "
            "(refused: NVDA, TSLA)",
        ),
        (401, {"detail": "invalid API key"}, "HTTP 401: invalid API key"),
        (
            422,
            FASTAPI_422,
            "HTTP 422: symbols: invalid symbol '*': only letters, digits, '.' and '/' ...",
        ),
        (
            409,
            {"detail": "refused", "refused_symbols": [f"S{i}" for i in range(12)]},
            "HTTP 409: refused (refused: S0, S1, S2, S3, S4, S5, S6, S7, S8, S9, and 2 more)",
        ),
        (502, NGINX_502, "HTTP 502: 502 Bad Gateway 502 Bad Gateway nginx"),
        (500, "Internal Server Error\n", "HTTP 500: Internal Server Error"),
        (503, "", "HTTP 503: Service Unavailable"),
        (599, "", "HTTP 599: no details"),
        (404, {"title": "Not Found", "status": 404}, "HTTP 404: Not Found"),
        (400, ["odd", "json"], "HTTP 400: ['odd', 'json']"),
    ],
)
def test_every_error_body_is_one_line(status: int, body: Any, expected: str) -> None:
    assert problem_line(status, body) == expected


def test_a_long_text_body_is_cut() -> None:
    line = problem_line(500, "x" * 5000)
    assert len(line) < 320 and line.endswith("...")


# -- values in tables -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "plain", "with_sign"),
    [
        ("1234567.89", "1,234,567.89", "+1,234,567.89"),
        ("-12345.5000", "-12,345.5000", "-12,345.5000"),
        ("0.00", "0.00", "0.00"),
        ("-0.00", "0.00", "0.00"),
        ("1E+3", "1,000", "+1,000"),
        (Decimal("999.99"), "999.99", "+999.99"),
        (None, "-", "-"),
        ("n/a", "n/a", "n/a"),
    ],
)
def test_money_has_separators_and_pnl_a_sign(value: object, plain: str, with_sign: str) -> None:
    assert money(value) == plain
    assert money(value, sign=True) == with_sign
    assert signed(value).plain == with_sign


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.04, "0.0s ago"), (2.34, "2.3s ago"), (245, "4m 05s ago"), (7830, "2h 10m ago"),
     (3 * 86400 + 4 * 3600, "3d 4h ago"), (-1.0, "0.0s ago"), (None, "-")],
)  # fmt: skip
def test_ages_read_as_ages(seconds: float | None, text: str) -> None:
    assert age(seconds) == text


def test_the_pnl_table_shows_money_readably() -> None:
    body = {
        "positions": [
            {
                "symbol": "AAPL", "side": "long", "qty": "1500", "avg_entry_price": "180.00",
                "current_price": "190.125", "price_source": "realtime",
                "price_timestamp": "2026-01-05T15:00:00Z", "price_age_seconds": 0.42,
                "cost_basis": "270000.00", "market_value": "285187.50",
                "unrealized_pl": "15187.50", "unrealized_pl_pct": "5.6250",
            },
            {
                "symbol": "MSFT", "side": "short", "qty": "-50", "avg_entry_price": "400.00",
                "current_price": "410.00", "price_source": "closing",
                "price_timestamp": None, "price_age_seconds": None,
                "cost_basis": "-20000.00", "market_value": "-20500.00",
                "unrealized_pl": "-500.00", "unrealized_pl_pct": "-2.5000",
            },
        ],
        "totals": {
            "positions": 2, "priced_positions": 2, "total_cost_basis": "250000.00",
            "total_market_value": "264687.50", "total_unrealized_pl": "14687.50",
            "total_unrealized_pl_pct": "5.1136",
        },
        "as_of": "2026-01-05T15:00:01Z",
    }  # fmt: skip
    text = rendered(pnl_table(body))
    aapl = next(line for line in text.splitlines() if "AAPL" in line)
    for shown in ("1,500", "270,000.00", "285,187.50", "+15,187.50", "+5.6250", "0.4s ago"):
        assert shown in aapl, (shown, aapl)
    msft = next(line for line in text.splitlines() if "MSFT" in line)
    for shown in ("-50", "-20,000.00", "-20,500.00", "-500.00", "-2.5000"):
        assert shown in msft, (shown, msft)
    total = next(line for line in text.splitlines() if "TOTAL" in line)
    for shown in ("250,000.00", "264,687.50", "+14,687.50", "+5.1136"):
        assert shown in total, (shown, total)


def test_the_health_table_says_yes_and_no() -> None:
    text = rendered(
        health_table(
            {
                "status": "degraded",
                "reason": "Redis not answering",
                "state": "connected",
                "websocket_connected": True,
                "redis_connected": False,
                "subscribed_symbols": 1200,
                "reconnect_attempts": 0,
                "max_reconnect_attempts": 10,
                "stats": {
                    "quotes_accepted": 123456,
                    "quotes_received": 123460,
                    "quotes_rejected": {"crossed": 3, "stale": 1},
                },
                "position_sync": {"enabled": False},
            }
        )
    )
    assert "True" not in text and "False" not in text
    assert "websocket connected │ yes" in text and "redis connected     │ no" in text
    assert "1,200" in text and "123,456 accepted of 123,460, 4 rejected" in text


# -- the demo ---------------------------------------------------------------------------------


def event(symbol: str, price: str) -> bytes:
    """A ``price.updated`` event as the service publishes it (the spec's members)."""
    return json.dumps(
        {"event_type": "price.updated", "symbol": symbol, "price": price,
         "timestamp": "2026-01-05T15:00:00.123456789Z"}
    ).encode()  # fmt: skip


def test_the_demo_counts_the_events_it_shows() -> None:
    board = _Board(symbols=["AAPL", "MSFT"])
    for payload in (event("AAPL", "190.00"), event("TSLA", "250.00"), event("MSFT", "410.00")):
        board.on_event(payload)
    assert board.events == 2
    assert sum(row.updates for row in board.rows.values()) == board.events
    assert "TSLA" not in board.rows


def test_the_demo_table_shows_the_quote_age_not_the_raw_timestamp() -> None:
    stamp = "2026-01-05T15:00:00.123456789Z"
    board = _Board(symbols=["AAPL"])
    board.on_event(event("AAPL", "1190.125"))
    board.rows["AAPL"].price = PriceData.model_validate(
        {"symbol": "AAPL", "bid": "1190.10", "ask": "1190.15", "mid": "1190.125",
         "bid_size": 1, "ask_size": 2, "timestamp": stamp, "exchange": "Q"}
    )  # fmt: skip
    quoted_at = 1767625200.123456789  # the stamp in epoch seconds
    text = rendered(_render(board, wall_clock=quoted_at + 2.5))
    assert stamp not in text and "2026-01-05" not in text
    row = next(line for line in text.splitlines() if "AAPL" in line)
    assert "2.5s ago" in row and "1,190.10" in row and "1,190.125" in row
    assert "quote age" in text


def test_demo_positions_follow_the_symbols() -> None:
    positions = demo_positions(["TSLA", "NVDA", "BRK.B", "AMD"])
    assert [(p["symbol"], p["qty"]) for p in positions] == [
        ("TSLA", "100"),
        ("NVDA", "-50"),
        ("BRK.B", "25"),
        ("AMD", "100"),
    ]
    assert [p["symbol"] for p in demo_positions()] == ["AAPL", "MSFT", "GOOGL"]
