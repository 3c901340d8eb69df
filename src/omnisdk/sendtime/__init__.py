"""Send-time optimisation: each customer's most engaged local hours, smoothed by everyone's.

Learned from opens, clicks and replies per channel and from purchases on any channel; used by
`ctx.send(..., at="best_time", within=...)`, broadcasts with `send_time="best"` and `omni.best_time`.
"""

from ._choose import candidate_times, choose, posterior, shares
from ._learn import PURCHASE, SIGNALS, local_zone
from ._model import EngagementHours, SendTime, SendTimeSettings

__all__ = [
    "PURCHASE",
    "SIGNALS",
    "EngagementHours",
    "SendTime",
    "SendTimeSettings",
    "candidate_times",
    "choose",
    "local_zone",
    "posterior",
    "shares",
]
