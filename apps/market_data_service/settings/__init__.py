"""The service's settings, one group per concern; ``config.Settings`` puts them together.

Each module holds one group's fields, their checks and the values derived from them
alone: the service itself (``service``), the broker (``alpaca``), Redis (``redis``)
and the data path's tunables (``streaming``); ``summary`` is the one-line configuration
logged at startup. Import the settings from :mod:`apps.market_data_service.config`,
the name the spec fixes.
"""

__all__: list[str] = []
