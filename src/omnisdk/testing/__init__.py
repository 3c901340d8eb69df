"""Test kit for users and plugin vendors: what tests omnisdk is what it ships to you."""

from ._journeys import JourneyTester

__all__ = ["JourneyTester"]
