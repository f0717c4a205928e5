"""The fault suite's fixture: a service harness on the simulator and a private Redis."""

from tests.faults.harness import harness

__all__ = ["harness"]
