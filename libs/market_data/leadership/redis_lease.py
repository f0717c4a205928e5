"""The lease's Redis commands: acquire, renew, release, and fencing off older epochs.

Each is one small Lua script, so a check and its write are one step for Redis:

- acquire: if no lease exists, raise the epoch past both the counter and the highest
  epoch this instance has seen (a Redis restarted without persistence loses the
  counter; the instances still remember), write the epoch stamp, then
  ``SET lease "{epoch} {instance} {token}" PX ttl``. Otherwise return the holder and
  its ``PTTL``.
- renew: ``PEXPIRE`` only if the lease still holds our value (compare-and-pexpire).
- release: ``DEL`` only if it does, and announce ``leader.released`` on
  ``market_data.status`` in the same step, so standbys try at once.

:meth:`RedisLease.fence_older` then kills the connections named with older epochs
(docs/leadership.md, "Fencing"); on a Redis Cluster on every primary
(:mod:`.cluster_fencing`). There the lease and the stamp share one slot (their names'
hash tag), so each script runs on one node; the status channel is an argument, not a
key, as a channel is in no slot a script may declare.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Final, cast

import msgspec

from libs.market_data.keys import KeySpace
from libs.market_data.leadership.cluster_fencing import fence_cluster
from libs.market_data.leadership.fencing import stamp
from libs.market_data.leadership.kill import kill_older
from libs.market_data.leadership.lease import Holder
from libs.redis_client import RedisClient
from libs.redis_client.client import translate_errors
from libs.redis_client.cluster import ClusterRedisClient
from libs.telemetry import now_rfc3339

__all__ = ["AcquireResult", "RedisLease", "parse_lease"]

_ACQUIRE: Final = """
local held = redis.call('GET', KEYS[1])
if held then return {0, held, redis.call('PTTL', KEYS[1])} end
local current = 0
local seen = redis.call('GET', KEYS[2])
if seen then current = tonumber(string.match(seen, '^%d+')) or 0 end
local known = tonumber(ARGV[4])
if known > current then current = known end
local epoch = current + 1
redis.call('SET', KEYS[2], epoch .. ':' .. ARGV[2])
local value = epoch .. ' ' .. ARGV[1] .. ' ' .. ARGV[2]
redis.call('SET', KEYS[1], value, 'PX', ARGV[3])
local fresh = 0
if not seen then fresh = 1 end
return {1, value, tonumber(ARGV[3]), fresh}
"""

_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[3], ARGV[2])
  return 1
end
return 0
"""

_encode: Final = msgspec.json.Encoder().encode


def parse_lease(value: bytes | str) -> Holder | None:
    """The holder in a lease value (``"{epoch} {instance} {token}"``), None if unreadable."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    parts = text.split(" ")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    return Holder(instance=parts[1], epoch=int(parts[0]))


@dataclass(frozen=True, slots=True)
class AcquireResult:
    """``acquired``: ours, with ``epoch``; else ``holder`` holds it ``remaining`` seconds.
    ``fresh``: there was no epoch stamp: a first start, or a Redis that lost its data."""

    acquired: bool
    holder: Holder | None
    remaining: float
    fresh: bool = False


class RedisLease:
    """One instance's lease commands; the token is new per acquisition."""

    def __init__(self, client: RedisClient, keys: KeySpace, instance: str, ttl: float) -> None:
        self._client = client
        self._keys = keys
        self.instance = instance
        self._ttl_ms = max(1, round(ttl * 1000))
        self.token = ""
        self._value = ""
        self._acquire = client.redis.register_script(_ACQUIRE)
        self._renew = client.redis.register_script(_RENEW)
        self._release = client.redis.register_script(_RELEASE)

    @property
    def epoch(self) -> int | None:
        holder = parse_lease(self._value) if self._value else None
        return None if holder is None else holder.epoch

    async def acquire(self, known_epoch: int) -> AcquireResult:
        token = secrets.token_hex(8)
        keys = [self._keys.leader_key, self._keys.epoch_key]
        args: list[str | int] = [self.instance, token, self._ttl_ms, known_epoch]
        with translate_errors(self._client.params, "lease acquire"):
            reply = cast("list[Any]", await self._acquire(keys=keys, args=args))
        won, value, ttl_ms = int(reply[0]), reply[1], int(reply[2])
        holder = parse_lease(value)
        remaining = max(0.0, ttl_ms / 1000)
        if won:
            self.token = token
            self._value = value.decode() if isinstance(value, bytes) else str(value)
        fresh = bool(won) and len(reply) > 3 and int(reply[3]) == 1
        return AcquireResult(bool(won), holder, remaining, fresh)

    def stamp(self) -> str:
        """Our epoch stamp (what the writers' connection check compares)."""
        epoch = self.epoch
        return "" if epoch is None else stamp(epoch, self.token)

    async def renew(self) -> bool:
        """Extend our lease by the TTL; False if it is not ours any more."""
        if not self._value:
            return False
        with translate_errors(self._client.params, "lease renew"):
            renewed = await self._renew(
                keys=[self._keys.leader_key], args=[self._value, self._ttl_ms]
            )
        return bool(renewed)

    async def release(self, details: dict[str, Any]) -> bool:
        """Delete our lease and announce it, in one step; False if it was not ours."""
        if not self._value:
            return False
        epoch = self.epoch
        value, self._value = self._value, ""
        notice = _encode(
            {
                "event_type": "leader.released",
                "timestamp": now_rfc3339(),
                "instance": self.instance,
                "epoch": epoch,
                **details,
            }
        )
        args: list[str | bytes] = [value, notice, self._keys.status_channel]
        with translate_errors(self._client.params, "lease release"):
            released = await self._release(keys=[self._keys.leader_key], args=args)
        return bool(released)

    def forget(self) -> None:
        """The lease is not ours any more (lost, or stepped down)."""
        self._value = ""

    async def fence_older(self, epoch: int) -> int:
        """Kill every writer connection of this namespace named with an older epoch;
        returns how many. Run after the stamp was raised and before any write.
        On a cluster, on every primary; raises if one could not be fenced."""
        client = self._client
        if isinstance(client, ClusterRedisClient):
            done = await fence_cluster(client, self._keys.namespace, epoch)
            return done.killed
        return await kill_older(client, self._keys.namespace, epoch)
