"""Durable, code-first customer journeys: `@journey`, `JourneyContext`, the replay runtime,
declarative journeys and run administration. See docs/journeys.md."""

from ._context import JourneyContext
from ._declarative import from_dict, from_yaml, to_mermaid
from ._decorator import REENTRY_RULES, Journey, catalogue, journey
from ._runs import RUN_STATUSES, JourneyRun, RunAdmin
from ._runtime import JourneyRuntime, JourneySettings
from ._worker import run_worker

__all__ = [
    "REENTRY_RULES",
    "RUN_STATUSES",
    "Journey",
    "JourneyContext",
    "JourneyRun",
    "JourneyRuntime",
    "JourneySettings",
    "RunAdmin",
    "catalogue",
    "from_dict",
    "from_yaml",
    "journey",
    "run_worker",
    "to_mermaid",
]
