"""Background tasks: stopping them for certain (docs/architecture.md, "Stopping tasks")."""

from libs.tasks.stopping import cancel_and_wait

__all__ = ["cancel_and_wait"]
