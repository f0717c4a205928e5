"""Gap fill: after a reconnect, a Redis recovery or a new subscription, read the latest
quotes over REST and write those newer than what the service holds through the normal
pipeline, then announce ``gap.filled`` (docs/architecture.md, "Gap fill").

- :mod:`~libs.market_data.gapfill.records`: the policy, triggers, plans, results, status;
- :mod:`~libs.market_data.gapfill.planner`: the sans-I/O decisions (which symbols, which
  batches, which budget, which quotes are newer);
- :mod:`~libs.market_data.gapfill.target`: the pipeline as a fill reads and writes it;
- :mod:`~libs.market_data.gapfill.runner`: :class:`GapFiller`, the asyncio shell.
"""

from libs.market_data.gapfill.planner import GapFillPlanner, Selection, newer_quotes
from libs.market_data.gapfill.records import (
    FillOutcome,
    FillPlan,
    FillRequest,
    FillResult,
    FillTrigger,
    GapFillPolicy,
    GapFillStatus,
    SkipReason,
)
from libs.market_data.gapfill.runner import GAP_FILLED, GapFiller
from libs.market_data.gapfill.target import (
    FillTarget,
    StreamFillTarget,
    TargetUnavailableError,
    fill_symbols,
)

__all__ = [
    "GAP_FILLED",
    "FillOutcome",
    "FillPlan",
    "FillRequest",
    "FillResult",
    "FillTarget",
    "FillTrigger",
    "GapFillPlanner",
    "GapFillPolicy",
    "GapFillStatus",
    "GapFiller",
    "Selection",
    "SkipReason",
    "StreamFillTarget",
    "TargetUnavailableError",
    "fill_symbols",
    "newer_quotes",
]
