"""Segments: who matches a condition over traits, consent and event history, on any channel."""

from ._dsl import Condition, Measure, consented, count, did, did_not, has, last_channel, total, trait
from ._segment import SEGMENT_ENTERED, SEGMENT_EXITED, Segment, SegmentWatcher

__all__ = [
    "SEGMENT_ENTERED",
    "SEGMENT_EXITED",
    "Condition",
    "Measure",
    "Segment",
    "SegmentWatcher",
    "consented",
    "count",
    "did",
    "did_not",
    "has",
    "last_channel",
    "total",
    "trait",
]
