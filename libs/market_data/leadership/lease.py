"""The lease as a state machine, without I/O: roles, what Redis answered, when to act.

The asyncio shell (:mod:`~libs.market_data.leadership.elector`) asks :meth:`Lease.next_step`
what to do and when, does it against Redis, and feeds the answer to :meth:`Lease.handle`,
the one place the role changes. Time is always passed in (``now``, monotonic seconds),
so every transition is tested without Redis or a real clock.

The clock here is a second line only: a leader that has not renewed for a whole TTL
steps down by itself, but a leader paused past its lease cannot know that until it
runs again. What keeps such a leader from writing is connection fencing
(:mod:`~libs.market_data.leadership.fencing`, docs/leadership.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "Acquired",
    "Answer",
    "Change",
    "Fenced",
    "HeldBy",
    "Holder",
    "Lease",
    "Lost",
    "ReleaseSeen",
    "Released",
    "Renewed",
    "Role",
    "Step",
    "Tick",
    "Unreachable",
]

# A renewal every third of the TTL leaves two more tries before the lease runs out.
RENEW_FRACTION: Final = 1 / 3
# After a failed renewal, try again this often (a fraction of the TTL) until it runs out.
RETRY_FRACTION: Final = 1 / 10
# A standby wakes this long after the lease it saw should have run out.
EXPIRY_SLACK: Final = 0.005


class Role(StrEnum):
    SINGLE = "single"  # LEADER_ELECTION=off: always streams, no lease
    STANDBY = "standby"
    LEADER = "leader"


class Step(StrEnum):
    ACQUIRE = "acquire"
    RENEW = "renew"
    NONE = "none"  # single: nothing to do


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or held) the lease, in which epoch."""

    instance: str
    epoch: int


# -- what the shell feeds in ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Acquired:
    """Our acquisition landed: ``epoch`` is ours; ``sent_at`` when we asked."""

    epoch: int
    sent_at: float


@dataclass(frozen=True, slots=True)
class HeldBy:
    """Another instance holds the lease, ``remaining`` seconds more (as Redis said)."""

    holder: Holder
    remaining: float


@dataclass(frozen=True, slots=True)
class Renewed:
    """Our renewal landed; ``sent_at`` when we asked (the lease runs from no earlier)."""

    sent_at: float


@dataclass(frozen=True, slots=True)
class Lost:
    """The renewal found another holder or none: the lease is not ours any more."""


@dataclass(frozen=True, slots=True)
class Unreachable:
    """Redis did not answer."""

    error: str


@dataclass(frozen=True, slots=True)
class Fenced:
    """A write connection found a newer epoch in Redis: another leader has started."""


@dataclass(frozen=True, slots=True)
class Released:
    """We released the lease (shutdown)."""


@dataclass(frozen=True, slots=True)
class ReleaseSeen:
    """A standby learned that the leader released the lease: try at once."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: a leader whose lease ran out by its own clock steps down."""


Answer = Acquired | HeldBy | Renewed | Lost | Unreachable | Fenced | Released | ReleaseSeen | Tick


@dataclass(frozen=True, slots=True)
class Change:
    """A role change, for the shell to act on (start or stop the leader's work)."""

    old: Role
    new: Role
    epoch: int | None  # ours when we lead, else the last epoch seen
    previous: Holder | None  # the leader before us (when we become leader)
    reason: str


class Lease:
    """One instance's view of the lease; :meth:`handle` is the only state change."""

    def __init__(self, instance: str, ttl: float, *, enabled: bool = True) -> None:
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl}")
        self.instance = instance
        self.ttl = ttl
        self.role = Role.STANDBY if enabled else Role.SINGLE
        self.epoch: int | None = None  # ours while leader
        self.known_epoch = 0  # the highest epoch seen: the next one must exceed it
        self.holder: Holder | None = None  # the leader as last seen (us when leading)
        self._holder_until = 0.0  # when the seen holder's lease runs out (our clock)
        self._valid_until = 0.0  # leader: the lease is surely ours until then
        self._next_at = 0.0  # when the next step is due
        self.last_error: str | None = None

    # -- reading ----------------------------------------------------------------------

    def next_step(self, now: float) -> tuple[Step, float]:
        """What to do next, and in how many seconds (0: now)."""
        if self.role is Role.SINGLE:
            return Step.NONE, self.ttl
        step = Step.RENEW if self.role is Role.LEADER else Step.ACQUIRE
        return step, max(0.0, self._next_at - now)

    def valid(self, now: float) -> bool:
        """Leader, and the lease surely not run out by our own clock."""
        return self.role is Role.LEADER and now < self._valid_until

    def remaining(self, now: float) -> float | None:
        """Seconds left of the current leader's lease as we know it (None: none seen)."""
        if self.role is Role.LEADER:
            return max(0.0, self._valid_until - now)
        if self.holder is None:
            return None
        return max(0.0, self._holder_until - now)

    def leader_live(self, now: float) -> bool:
        """Some instance holds an unexpired lease, as far as we know."""
        if self.role is Role.SINGLE:
            return True
        if self.role is Role.LEADER:
            return self.valid(now)
        return self.holder is not None and now < self._holder_until

    # -- the one state change -------------------------------------------------------

    def handle(self, answer: Answer, now: float) -> Change | None:
        """Apply what Redis answered (or that time passed); returns the role change, if any."""
        if self.role is Role.SINGLE:
            return None
        ttl = self.ttl
        if isinstance(answer, Acquired):
            self.known_epoch = max(self.known_epoch, answer.epoch)
            previous = self.holder
            self.epoch = answer.epoch
            self.holder = Holder(self.instance, answer.epoch)
            self._valid_until = answer.sent_at + ttl
            self._next_at = answer.sent_at + ttl * RENEW_FRACTION
            self.last_error = None
            return self._become(Role.LEADER, "lease acquired", previous)
        if isinstance(answer, HeldBy):
            self.known_epoch = max(self.known_epoch, answer.holder.epoch)
            self.holder = answer.holder
            self._holder_until = now + answer.remaining
            # Try again when that lease should run out, and at least every third TTL.
            wait = min(ttl * RENEW_FRACTION, answer.remaining + EXPIRY_SLACK)
            self._next_at = now + max(0.0, wait)
            self.last_error = None
            return None
        if isinstance(answer, Renewed):
            if self.role is Role.LEADER:
                self._valid_until = answer.sent_at + ttl
                self._next_at = answer.sent_at + ttl * RENEW_FRACTION
                self.last_error = None
            return None
        if isinstance(answer, Unreachable):
            self.last_error = answer.error
            if self.role is Role.LEADER:
                if now >= self._valid_until:
                    return self._step_down(now, f"lease ran out, Redis unreachable: {answer.error}")
                self._next_at = now + ttl * RETRY_FRACTION
            else:
                self._next_at = now + ttl * RENEW_FRACTION
            return None
        if isinstance(answer, Lost):
            return self._step_down(now, "lease lost (another holder or none)")
        if isinstance(answer, Fenced):
            return self._step_down(now, "fenced: a newer epoch is writing")
        if isinstance(answer, Released):
            return self._step_down(now, "lease released")
        if isinstance(answer, ReleaseSeen):
            if self.role is Role.STANDBY:
                self.holder = None
                self._next_at = now
            return None
        # Tick
        if self.role is Role.LEADER and now >= self._valid_until:
            return self._step_down(now, "lease ran out by our clock without a renewal")
        return None

    def _step_down(self, now: float, reason: str) -> Change | None:
        if self.role is not Role.LEADER:
            return None
        self.epoch = None
        self.holder = None
        self._next_at = now  # look at once: another leader, or take it back
        return self._become(Role.STANDBY, reason, None)

    def _become(self, role: Role, reason: str, previous: Holder | None) -> Change | None:
        old = self.role
        if role is old:
            return None
        self.role = role
        epoch = self.epoch if role is Role.LEADER else self.known_epoch
        return Change(old=old, new=role, epoch=epoch, previous=previous, reason=reason)
