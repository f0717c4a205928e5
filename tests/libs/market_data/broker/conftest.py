"""The ``broker`` fixture: a REST client on the simulator, closed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from apps.simulator import AlpacaSimulator
from libs.market_data.broker import AlpacaRestClient
from tests.libs.market_data.broker.sim_client import client_for


@pytest.fixture
async def broker(simulator: AlpacaSimulator) -> AsyncIterator[AlpacaRestClient]:
    async with client_for(simulator) as client:
        yield client
