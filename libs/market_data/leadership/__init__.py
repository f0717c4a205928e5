"""Leader election on Redis: one instance streams, standbys take over (docs/leadership.md).

- :mod:`.lease`: the sans-I/O lease state machine (roles, answers, timing);
- :mod:`.fencing`: connection names with the epoch, the writers' guard, what to kill;
- :mod:`.redis_lease`: the Lua scripts (acquire, renew, release) and the fencing kill;
- :mod:`.kill`, :mod:`.cluster_fencing`: the kill on one server, on every cluster node;
- :mod:`.elector`: the asyncio shell that runs them;
- :mod:`.requests`: a standby's subscription changes, applied by the leader.
"""

from libs.market_data.leadership.elector import LeaderElector
from libs.market_data.leadership.fencing import (
    INSTANCE_ID_PATTERN,
    EpochGuard,
    connection_name,
    default_instance_id,
)
from libs.market_data.leadership.lease import Change, Holder, Lease, Role
from libs.market_data.leadership.requests import Mailbox, RequestDesk, RequestForwarder

__all__ = [
    "INSTANCE_ID_PATTERN",
    "Change",
    "EpochGuard",
    "Holder",
    "LeaderElector",
    "Lease",
    "Mailbox",
    "RequestDesk",
    "RequestForwarder",
    "Role",
    "connection_name",
    "default_instance_id",
]
