"""A broadcast worker for the SIGKILL test: queues due broadcasts, forever, until killed.

Run as `python broadcast_crash_worker.py STORE_URL START_ISO`: its virtual clock stands at START_ISO.
"""

from __future__ import annotations

import sys
from datetime import datetime

from omnisdk import Omni, VirtualClock

SETTINGS = {"analytics": {"broadcast_page_size": 10, "broadcast_pages_per_tick": 1}}


def main() -> None:
    url, start = sys.argv[1], datetime.fromisoformat(sys.argv[2])
    omni = Omni(url, clock=VirtualClock(start), config=SETTINGS)
    print("ready", flush=True)
    while True:
        omni.run_until_idle()


if __name__ == "__main__":
    main()
