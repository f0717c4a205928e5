"""The REST client pointed at the simulator, with retries short enough for tests."""

from __future__ import annotations

from apps.simulator import AlpacaSimulator
from libs.market_data.broker import AlpacaRestClient

SECRET = "sim-secret"


def client_for(sim: AlpacaSimulator, **options: object) -> AlpacaRestClient:
    settings: dict[str, object] = {
        "base_url": sim.http_url(),
        "data_base_url": sim.http_url(),
        "retry_base_delay": 0.01,
        "max_retry_wait": 3.0,
        **options,
    }
    api_key = str(settings.pop("api_key", "sim-key"))
    secret = str(settings.pop("secret_key", SECRET))
    return AlpacaRestClient(api_key, secret, **settings)  # type: ignore[arg-type]
