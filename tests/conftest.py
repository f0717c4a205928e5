"""Root fixtures: a private redis-server and the Alpaca-protocol simulator, both real."""

pytest_plugins = [
    "tests.fixtures.redis",
    "tests.fixtures.simulator",
    "tests.fixtures.tls",
    "tests.fixtures.fault_report",
]
