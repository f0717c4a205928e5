"""The running-service fixtures of ``test_main`` for every test module of this package."""

from tests.apps.market_data_service.test_main import service, start_service

__all__ = ["service", "start_service"]
