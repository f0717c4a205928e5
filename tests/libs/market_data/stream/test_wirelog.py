"""The wire logger never lets the auth frame's text through, and leaves the rest alone."""

from __future__ import annotations

import logging

import pytest

from libs.market_data.stream.protocol import encode_auth, encode_subscription
from libs.market_data.stream.wirelog import WIRE_LOGGER


def test_the_auth_frame_is_blanked_and_other_frames_are_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    auth = encode_auth("KEY-1234", "SECRET-5678").decode()
    subscribe = encode_subscription("subscribe", ["AAPL"]).decode()
    with caplog.at_level(logging.DEBUG, logger=WIRE_LOGGER.name):
        WIRE_LOGGER.debug("> TEXT %s [%d bytes]", auth, len(auth))
        WIRE_LOGGER.debug("> TEXT '%s' [%d bytes]", auth[:20] + "...", len(auth))
        WIRE_LOGGER.debug("> TEXT %s [%d bytes]", subscribe, len(subscribe))
    messages = [record.getMessage() for record in caplog.records]
    assert messages[:2] == ["> (the auth message: redacted)"] * 2
    assert subscribe in messages[2]
    assert not any("SECRET" in m or "KEY-1234" in m for m in messages)
