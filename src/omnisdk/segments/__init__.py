"""Segments: who matches a condition over traits, consent and event history, on any channel."""

from ._dsl import (
    Condition,
    Measure,
    churn_risk,
    consented,
    count,
    did,
    did_not,
    expected_purchases,
    has,
    last_channel,
    predicted_clv,
    probability_alive,
    total,
    trait,
)
from ._segment import SEGMENT_ENTERED, SEGMENT_EXITED, Segment, SegmentWatcher

__all__ = [
    "SEGMENT_ENTERED",
    "SEGMENT_EXITED",
    "Condition",
    "Measure",
    "Segment",
    "SegmentWatcher",
    "churn_risk",
    "consented",
    "count",
    "did",
    "did_not",
    "expected_purchases",
    "has",
    "last_channel",
    "predicted_clv",
    "probability_alive",
    "total",
    "trait",
]
