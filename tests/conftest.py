"""Root fixtures: a private redis-server, the Alpaca-protocol simulator (both real) and the
service served on them in the test's loop."""

pytest_plugins = [
    "tests.fixtures.redis",
    "tests.fixtures.cluster",
    "tests.fixtures.simulator",
    "tests.fixtures.service",
    "tests.fixtures.tls",
    "tests.fixtures.fault_report",
    "tests.fixtures.hang_dump",
]
