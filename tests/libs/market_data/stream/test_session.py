"""The sans-I/O session: handshake, subscription requests and the error-code map, driven
by decoded control messages alone (no socket, no event loop)."""

from __future__ import annotations

import json

import pytest

from libs.market_data.exceptions import (
    AlpacaError,
    AuthenticationError,
    ConnectionLimitError,
    ProtocolError,
    SlowClientError,
    SubscriptionError,
)
from libs.market_data.stream.protocol import ErrorMessage, SubscriptionAck, SuccessMessage
from libs.market_data.stream.session import (
    FATAL_ERROR_CODES,
    Answered,
    Authenticated,
    Fail,
    Phase,
    Ready,
    Reported,
    Send,
    StreamSession,
)

CONNECTED = SuccessMessage(msg="connected")
AUTHENTICATED = SuccessMessage(msg="authenticated")


def ack(*quotes: str) -> SubscriptionAck:
    return SubscriptionAck(quotes=list(quotes))


def sent(event: object) -> dict[str, object]:
    assert isinstance(event, Send), event
    decoded = json.loads(event.text)
    assert isinstance(decoded, dict)
    return decoded


def ready_session(*symbols: str) -> StreamSession:
    """A session through greeting, auth and resubscription of ``symbols``."""
    session = StreamSession("key", "secret")
    session.add(symbols)
    session.connection_opened()
    session.receive(CONNECTED)
    assert isinstance(session.receive(AUTHENTICATED), Authenticated)
    event = session.resubscribe()
    if symbols:
        event = session.receive(ack(*symbols))
    assert event == Ready()
    assert session.phase is Phase.READY
    return session


# -- handshake -----------------------------------------------------------------------------


def test_handshake_sends_auth_then_the_wanted_set_sorted() -> None:
    session = StreamSession("key", "secret")
    assert session.add(["MSFT", "AAPL", "MSFT"]) == ["MSFT", "AAPL"]
    session.connection_opened()
    assert sent(session.receive(CONNECTED)) == {
        "action": "auth",
        "key": "key",
        "secret": "secret",
    }
    assert session.receive(AUTHENTICATED) == Authenticated()
    assert sent(session.resubscribe()) == {"action": "subscribe", "quotes": ["AAPL", "MSFT"]}
    assert session.phase is Phase.RESUBSCRIBING
    assert session.receive(ack("AAPL", "MSFT")) == Ready()
    assert session.confirmed == {"AAPL", "MSFT"}
    assert session.phase is Phase.READY


def test_nothing_wanted_is_ready_right_after_auth() -> None:
    session = StreamSession("k", "s")
    session.connection_opened()
    session.receive(CONNECTED)
    session.receive(AUTHENTICATED)
    assert session.resubscribe() == Ready()


def test_a_new_socket_starts_over_and_forgets_the_old_confirmation() -> None:
    session = ready_session("AAPL")
    session.connection_lost()
    assert session.phase is Phase.CLOSED
    session.connection_opened()
    assert isinstance(session.receive(CONNECTED), Send)
    session.receive(AUTHENTICATED)
    session.resubscribe()
    assert session.confirmed == frozenset()
    assert session.desired == {"AAPL"}  # what we want outlives the socket


@pytest.mark.parametrize(
    ("step", "control"),
    [
        ("greeting", AUTHENTICATED),
        ("greeting", ack()),
        ("auth", CONNECTED),
        ("auth", ack()),
    ],
)
def test_an_unexpected_handshake_message_fails_as_a_protocol_error(
    step: str, control: SuccessMessage | SubscriptionAck
) -> None:
    session = StreamSession("k", "s")
    session.connection_opened()
    if step == "auth":
        session.receive(CONNECTED)
    event = session.receive(control)
    assert isinstance(event, Fail)
    assert isinstance(event.error, ProtocolError)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (402, AuthenticationError),
        (409, AuthenticationError),
        (410, AuthenticationError),
        (411, AuthenticationError),
        (406, ConnectionLimitError),
        (407, SlowClientError),
        (404, AlpacaError),
        (500, AlpacaError),
    ],
)
def test_an_error_answering_auth_fails_the_session_with_its_type(
    code: int, kind: type[AlpacaError]
) -> None:
    session = StreamSession("k", "s")
    session.connection_opened()
    session.receive(CONNECTED)
    event = session.receive(ErrorMessage(code=code, msg="no"))
    assert isinstance(event, Fail)
    assert type(event.error) is kind
    assert event.error.code == code
    assert session.error_frames == 1


def test_fatal_codes_are_exactly_the_ones_no_retry_can_fix() -> None:
    assert frozenset({402, 409, 410, 411}) == FATAL_ERROR_CODES


def test_a_refused_resubscription_keeps_the_session_and_the_wanted_set() -> None:
    session = StreamSession("k", "s")
    session.add(["AAPL", "MSFT"])
    session.connection_opened()
    session.receive(CONNECTED)
    session.receive(AUTHENTICATED)
    session.resubscribe()
    event = session.receive(ErrorMessage(code=405, msg="symbol limit exceeded"))
    assert isinstance(event, Ready)
    assert isinstance(event.refused, SubscriptionError)
    assert event.refused.symbols == ["AAPL", "MSFT"]
    assert session.phase is Phase.READY
    assert session.desired == {"AAPL", "MSFT"}


@pytest.mark.parametrize("code", [406, 410, 500])
def test_any_other_error_answering_the_resubscription_fails_the_session(code: int) -> None:
    session = StreamSession("k", "s")
    session.add(["AAPL"])
    session.connection_opened()
    session.receive(CONNECTED)
    session.receive(AUTHENTICATED)
    session.resubscribe()
    event = session.receive(ErrorMessage(code=code, msg="no"))
    assert isinstance(event, Fail)
    assert isinstance(event.error, AlpacaError)
    assert event.error.code == code


# -- requests ------------------------------------------------------------------------------


def test_a_subscribe_is_answered_by_the_ack_which_sets_the_confirmed_set() -> None:
    session = ready_session("AAPL")
    assert session.add(["TSLA", "AAPL"]) == ["TSLA"]
    assert sent(session.request("subscribe", ["TSLA"])) == {
        "action": "subscribe",
        "quotes": ["TSLA"],
    }
    event = session.receive(ack("AAPL", "TSLA"))
    assert event == Answered("subscribe", ("TSLA",), None)
    assert session.confirmed == {"AAPL", "TSLA"}
    assert session.pending is None


@pytest.mark.parametrize(("code", "kind"), [(405, SubscriptionError), (500, AlpacaError)])
def test_a_refused_subscribe_takes_its_symbols_back(code: int, kind: type[AlpacaError]) -> None:
    session = ready_session("AAPL")
    session.add(["MSFT", "GOOGL"])
    session.request("subscribe", ["MSFT", "GOOGL"])
    event = session.receive(ErrorMessage(code=code, msg="refused"))
    assert isinstance(event, Answered)
    assert type(event.error) is kind
    if isinstance(event.error, SubscriptionError):
        assert event.error.symbols == ["GOOGL", "MSFT"]
    assert session.desired == {"AAPL"}
    assert session.phase is Phase.READY  # a refused request never ends the session


def test_a_refused_unsubscribe_does_not_bring_the_symbols_back() -> None:
    session = ready_session("AAPL", "MSFT")
    assert session.remove(["MSFT", "TSLA"]) == ["MSFT"]
    session.request("unsubscribe", ["MSFT"])
    event = session.receive(ErrorMessage(code=405, msg="refused"))
    assert isinstance(event, Answered)
    assert isinstance(event.error, SubscriptionError)
    assert session.desired == {"AAPL"}


def test_a_success_message_is_no_answer_to_a_request() -> None:
    session = ready_session()
    session.add(["AAPL"])
    session.request("subscribe", ["AAPL"])
    event = session.receive(AUTHENTICATED)
    assert isinstance(event, Answered)
    assert isinstance(event.error, ProtocolError)
    assert session.desired == {"AAPL"}  # not refused by the server: kept


def test_one_request_at_a_time_and_only_once_ready() -> None:
    session = StreamSession("k", "s")
    with pytest.raises(RuntimeError):
        session.request("subscribe", ["AAPL"])
    session = ready_session()
    session.request("subscribe", ["AAPL"])
    with pytest.raises(RuntimeError):
        session.request("subscribe", ["MSFT"])


def test_an_abandoned_request_takes_a_late_reply_as_unsolicited() -> None:
    session = ready_session()
    session.add(["AAPL"])
    session.request("subscribe", ["AAPL"])
    session.abandon_request()
    assert session.receive(ack("AAPL")) is None
    assert session.confirmed == {"AAPL"}
    session.request("subscribe", ["MSFT"])  # the slot is free again


def test_a_lost_socket_drops_the_pending_request() -> None:
    session = ready_session()
    session.request("subscribe", ["AAPL"])
    session.connection_lost()
    assert session.pending is None
    assert session.receive(ack("AAPL")) is None  # no socket: nothing is expected


# -- unsolicited ---------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "kind"), [(407, SlowClientError), (500, AlpacaError)])
def test_slow_client_and_server_error_end_the_session(code: int, kind: type[AlpacaError]) -> None:
    event = ready_session("AAPL").receive(ErrorMessage(code=code, msg="bye"))
    assert isinstance(event, Fail)
    assert type(event.error) is kind


@pytest.mark.parametrize("code", [400, 402, 405, 406, 409, 410, 411, 499])
def test_other_unsolicited_errors_are_only_reported(code: int) -> None:
    session = ready_session("AAPL")
    event = session.receive(ErrorMessage(code=code, msg="hm"))
    assert isinstance(event, Reported)
    assert event.error.code == code
    assert session.phase is Phase.READY
    assert session.error_frames == 1


def test_an_unsolicited_ack_updates_the_confirmed_set() -> None:
    session = ready_session("AAPL")
    assert session.receive(ack("AAPL", "MSFT")) is None
    assert session.confirmed == {"AAPL", "MSFT"}
    assert session.receive(SuccessMessage(msg="whatever")) is None


def test_the_wanted_set_is_one_object_for_life() -> None:
    # The façade holds it and reads it per frame: it must never be replaced.
    session = ready_session("AAPL")
    wanted = session.desired
    session.add(["MSFT"])
    session.request("subscribe", ["MSFT"])
    session.receive(ErrorMessage(code=405, msg="refused"))  # rolled back
    session.remove(["AAPL"])
    session.connection_lost()
    session.connection_opened()
    assert session.desired is wanted
    assert wanted == set()
