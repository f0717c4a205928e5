"""What the simulator is told to do wrong: pacing, stalls and the faults queued for clients.

:class:`FaultPlan` is the one place these settings live and change. It holds the data
pacing (rate, frame size, paused) and the queues of faults the next requests meet:
auth refusals, refused subscriptions and failing REST answers. Sessions and the REST
handler only read a :class:`Pacing` snapshot or take the next queued fault; tests and
the facade change the plan through its methods. No I/O: it can be tested without a
socket or an event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["Endpoint", "FaultPlan", "Pacing", "RestFailure"]

Endpoint = Literal["positions", "snapshots", "latest_quotes"]


@dataclass(frozen=True, slots=True)
class Pacing:
    """How generated data flows now; a new snapshot (and ``epoch``) on every change."""

    rate: float
    batch_size: int
    paused: bool = False
    # Data loops restart their frame schedule when this moves, so a change applies at
    # once and a resume brings no catch-up burst.
    epoch: int = 0

    @property
    def streaming(self) -> bool:
        """Whether generated quotes flow at all."""
        return self.rate > 0 and not self.paused


@dataclass(frozen=True, slots=True)
class RestFailure:
    """One forced REST error answer."""

    status: int
    retry_after: float | None = None
    ratelimit_reset: float | None = None


def _check_rate(rate: float, batch_size: int | None) -> None:
    # Written to refuse NaN too, which compares false with everything.
    if not rate >= 0 or rate == float("inf"):
        raise ValueError(f"rate must be a finite number >= 0, got {rate}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


class FaultPlan:
    """Data pacing and queued faults, changed only through these methods.

    ``on_pacing_change`` runs after every pacing change; the simulator wakes its
    sleeping data loops with it.
    """

    def __init__(
        self,
        rate: float,
        batch_size: int,
        *,
        on_pacing_change: Callable[[], None] | None = None,
    ) -> None:
        _check_rate(rate, batch_size)
        self._pacing = Pacing(rate, batch_size)
        self._on_pacing_change = on_pacing_change
        self._auth_failures: deque[int] = deque()
        self._subscribe_rejections: deque[int] = deque()
        self._rest_failures: dict[Endpoint, deque[RestFailure]] = {
            "positions": deque(),
            "snapshots": deque(),
            "latest_quotes": deque(),
        }

    # -- pacing ----------------------------------------------------------------------

    @property
    def pacing(self) -> Pacing:
        """The current pacing; an immutable snapshot."""
        return self._pacing

    def set_rate(self, rate: float, batch_size: int | None = None) -> None:
        """Change the generated quotes per second (and frame size); applies at once."""
        _check_rate(rate, batch_size)
        pacing = self._pacing
        size = pacing.batch_size if batch_size is None else batch_size
        self._publish(replace(pacing, rate=float(rate), batch_size=size))

    def pause(self) -> None:
        """Stop generated data; sockets stay open (a stall)."""
        self._publish(replace(self._pacing, paused=True))

    def resume(self) -> None:
        """Restart generated data after :meth:`pause`."""
        self._publish(replace(self._pacing, paused=False))

    def _publish(self, pacing: Pacing) -> None:
        # Every change bumps the epoch, even to the same values: a resume must restart
        # the schedule rather than catch up on the frames the pause skipped.
        self._pacing = replace(pacing, epoch=self._pacing.epoch + 1)
        if self._on_pacing_change is not None:
            self._on_pacing_change()

    # -- WebSocket faults --------------------------------------------------------------

    def fail_next_auth(self, *codes: int) -> None:
        """Answer the next auth attempts with these error codes, in order."""
        self._auth_failures.extend(codes)

    def reject_next_subscribe(self, code: int = 405) -> None:
        """Answer the next subscribe request with this error code."""
        self._subscribe_rejections.append(code)

    def take_auth_failure(self) -> int | None:
        """The error code the auth attempt at hand must get, or ``None`` to judge it."""
        queue = self._auth_failures
        return queue.popleft() if queue else None

    def take_subscribe_rejection(self) -> int | None:
        """The error code the subscribe at hand must get, or ``None`` to apply it."""
        queue = self._subscribe_rejections
        return queue.popleft() if queue else None

    # -- REST faults -------------------------------------------------------------------

    def fail_rest(
        self,
        endpoint: Endpoint,
        status: int = 503,
        times: int = 1,
        *,
        retry_after: float | None = None,
        ratelimit_reset: float | None = None,
    ) -> None:
        """Answer the next ``times`` requests of ``endpoint`` with ``status``.

        ``retry_after`` adds a ``Retry-After`` header (seconds); ``ratelimit_reset``
        sets ``X-Ratelimit-Reset`` to that epoch time.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status, got {status}")
        failure = RestFailure(status, retry_after, ratelimit_reset)
        self._rest_failures[endpoint].extend(failure for _ in range(times))

    def take_rest_failure(self, endpoint: Endpoint) -> RestFailure | None:
        """The forced answer the request at hand must get, or ``None`` to serve it."""
        queue = self._rest_failures[endpoint]
        return queue.popleft() if queue else None

    def clear_rest_failures(self) -> None:
        """Forget every queued REST failure."""
        for queue in self._rest_failures.values():
            queue.clear()
