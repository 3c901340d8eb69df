"""Test kit for users and plugin vendors: what tests omnisdk is what it ships to you."""

from ._journeys import JourneyTester
from ._providers import provider_config

__all__ = ["JourneyTester", "provider_config"]
