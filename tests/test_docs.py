"""The docs keep up with the code: every hook is documented with its full signature."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from omnisdk import hookspecs

DOCS = Path(__file__).parent.parent / "docs"
HOOKS = [name for name, fn in vars(hookspecs).items() if inspect.isfunction(fn) and hasattr(fn, "omnisdk_spec")]


def test_there_are_hooks() -> None:
    assert "register_providers" in HOOKS and len(HOOKS) >= 5


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook: str) -> None:
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"`{hook}({params})`" in (DOCS / "plugin-authoring.md").read_text()


def test_every_page_in_the_nav_exists_and_every_page_is_in_the_nav() -> None:
    nav = re.findall(r":\s*(\S+\.md)\s*$", (DOCS.parent / "mkdocs.yml").read_text(), re.M)
    assert sorted(nav) == sorted(p.name for p in DOCS.glob("*.md"))
