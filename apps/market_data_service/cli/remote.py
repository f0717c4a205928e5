"""The client commands: ``health``, ``subscriptions``, ``subscribe``, ``unsubscribe``.

Each reads the API key like the service (:mod:`apps.market_data_service.cli.client`),
prints a readable result on standard output (``--json``: the service's body instead)
and a failure as one line on standard error; :class:`CommandError` carries the line and
the exit code to :func:`apps.market_data_service.cli.commands.main`.

Symbols are checked here by the service's own rule before anything is sent: tickers,
crypto pairs (``BTC/USD``) and ``*`` (the whole stock market); ``--channels`` takes
``quotes``, ``trades`` and ``bars`` (docs/architecture.md, "Topics").
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from apps.market_data_service.cli.client import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    Reply,
    ServiceClient,
    problem_line,
    service_client,
)
from apps.market_data_service.cli.subscription_tables import subscriptions_table
from apps.market_data_service.cli.tables import console, health_table
from libs.market_data import InvalidSymbolError
from libs.market_data.topics import Channel, normalize_topics

__all__ = ["health", "subscribe", "subscribe_in_batches", "subscriptions", "unsubscribe"]

_NAMED = 10  # symbols named in a summary line; more are counted


def _print_json(body: Any) -> None:
    print(json.dumps(body, indent=2) if not isinstance(body, str) else body)


def _names(symbols: list[str]) -> str:
    shown = ", ".join(symbols[:_NAMED])
    return shown + (f" and {len(symbols) - _NAMED:,} more" if len(symbols) > _NAMED else "")


def health(args: argparse.Namespace) -> int:
    """``GET /health``: 0 when it answers 200 (healthy or degraded), 1 otherwise."""
    with service_client(args.api, args.api_key) as client:
        reply = client.request("GET", "/health")
        if not (isinstance(reply.body, dict) and "status" in reply.body):
            raise client.error(reply)  # not a health body: say what came instead
    if args.json:
        _print_json(reply.body)
    else:
        console().print(health_table(reply.body))
    return EXIT_OK if reply.ok else EXIT_FAILED


def subscriptions(args: argparse.Namespace) -> int:
    """``GET /api/v1/subscriptions``: every subscribed symbol and its sources."""
    with service_client(args.api, args.api_key) as client:
        reply = client.call("GET", "/api/v1/subscriptions")
    if args.json:
        _print_json(reply.body)
    elif isinstance(reply.body, dict) and not reply.body.get("symbols"):
        print("no subscriptions")
    else:
        console().print(subscriptions_table(reply.body))
    return EXIT_OK


def _symbols(raw: list[str]) -> list[str]:
    """Upper-cased, checked, duplicates dropped: the service's own rule, before any request
    (``*`` is the whole stock market; an option symbol is refused, as the service does)."""
    try:
        return normalize_topics(raw)  # quote topics: the symbols themselves
    except InvalidSymbolError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def channels_of(raw: list[str] | None) -> list[str] | None:
    """``--channels quotes,trades`` (repeatable, any case) as a list, duplicates dropped;
    ``None`` when not given. An unknown channel is a usage error (exit 2)."""
    if not raw:
        return None
    names = [n.strip().lower() for part in raw for n in part.split(",") if n.strip()]
    known = [c.value for c in Channel]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise CommandError(
            f"unknown channel {unknown[0] if unknown else '(none)'!r}: "
            f"--channels takes {', '.join(known)}, comma-separated",
            EXIT_USAGE,
        )
    return list(dict.fromkeys(names))


def _shown(symbols: list[str]) -> str:
    return ", ".join("* (the whole stock market)" if s == "*" else s for s in symbols)


@dataclass
class Subscribed:
    """The outcome of :func:`subscribe_in_batches`."""

    asked: list[str]
    channels: list[str] | None = None  # None: the service's default, quotes
    requests: int = 0
    subscribed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    refusal: Reply | None = None  # the first 409, for its detail
    total: int | None = None  # total_subscriptions of the last answer that said it

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message": f"Successfully subscribed to {len(self.subscribed)} symbols",
            "subscribed_symbols": self.subscribed,
            "total_subscriptions": self.total,
        }
        if self.channels is not None:
            body["channels"] = self.channels
        if self.refused:
            body["refused_symbols"] = self.refused
        return body

    def summary(self, batch_size: int) -> str:
        if len(self.subscribed) == len(self.asked) and len(self.asked) <= _NAMED:
            done = f"subscribed {_shown(self.subscribed)}"
        elif len(self.subscribed) == len(self.asked):
            done = f"subscribed {len(self.asked):,} symbols"
        else:
            done = f"subscribed {len(self.subscribed):,} of {len(self.asked):,} symbols"
        if self.channels is not None:
            done += f" ({', '.join(self.channels)})"
        if self.requests > 1:
            done += f" in {self.requests:,} requests of at most {batch_size:,}"
        if self.total is not None:
            done += f" ({self.total:,} subscriptions in total)"
        return done

    def refused_line(self) -> str:
        assert self.refusal is not None
        body = self.refusal.body
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k != "refused_symbols"}
        reason = problem_line(self.refusal.status, body, self.refusal.reason)
        return (
            f"refused {len(self.refused):,} of {len(self.asked):,} symbols "
            f"({_names(self.refused)}): {reason}"
        )


def subscribe_in_batches(
    client: ServiceClient,
    symbols: list[str],
    batch_size: int,
    channels: list[str] | None = None,
) -> Subscribed:
    """POST ``symbols`` in batches of ``batch_size``, one after the other, on ``channels``
    (``None``: the service's default, quotes).

    A batch the broker refuses (409) is recorded and the next ones are still sent: the
    outcome names every refused symbol. Any other failure stops at that batch and raises
    :class:`CommandError` (``.outcome`` says what went through before it).
    """
    outcome = Subscribed(asked=symbols, channels=channels)
    for start in range(0, len(symbols), batch_size):
        batch = symbols[start : start + batch_size]
        body: dict[str, Any] = {"symbols": batch}
        if channels is not None:
            body["channels"] = channels
        reply = client.request("POST", "/api/v1/subscribe", body)
        outcome.requests += 1
        answer = reply.body if isinstance(reply.body, dict) else {}
        if isinstance(answer.get("total_subscriptions"), int):
            outcome.total = answer["total_subscriptions"]
        if reply.ok:
            outcome.subscribed.extend(answer.get("subscribed_symbols") or batch)
        elif reply.status == 409:
            refused = answer.get("refused_symbols")
            outcome.refused.extend(refused if isinstance(refused, list) and refused else batch)
            outcome.refusal = outcome.refusal or reply
        else:
            error = client.error(reply)
            if outcome.subscribed:
                error.args = (f"{error} (after subscribing {len(outcome.subscribed):,} symbols)",)
            raise error
    return outcome


def subscribe(args: argparse.Namespace) -> int:
    """``POST /api/v1/subscribe``, in batches of the API's limit per request."""
    from apps.market_data_service.api.schemas import MAX_SYMBOLS_PER_REQUEST

    symbols = _symbols(args.symbols)
    channels = channels_of(args.channels)
    with service_client(args.api, args.api_key) as client:
        outcome = subscribe_in_batches(client, symbols, MAX_SYMBOLS_PER_REQUEST, channels)
    if args.json:
        _print_json(outcome.as_json())
    elif outcome.subscribed or not outcome.refused:
        print(outcome.summary(MAX_SYMBOLS_PER_REQUEST))
    if outcome.refused:
        raise CommandError(outcome.refused_line(), EXIT_FAILED)
    return EXIT_OK


def unsubscribe(args: argparse.Namespace) -> int:
    """``DELETE /api/v1/subscribe/{symbol}`` (``?channels=``: those only; else all)."""
    (symbol,) = _symbols([args.symbol])
    channels = channels_of(args.channels)
    query = "" if channels is None else "?" + urlencode([("channels", c) for c in channels])
    with service_client(args.api, args.api_key) as client:
        reply = client.call("DELETE", f"/api/v1/subscribe/{symbol}{query}")
    if args.json:
        _print_json(reply.body)
    else:
        left = reply.body.get("remaining_subscriptions") if isinstance(reply.body, dict) else None
        more = f" ({left:,} subscriptions left)" if isinstance(left, int) else ""
        which = "" if channels is None else f" ({', '.join(channels)})"
        print(f"unsubscribed {_shown([symbol])}{which}{more}")
    return EXIT_OK
