"""`omnisdk render`: preview a template for a real customer of the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from omnisdk import Omni
from omnisdk.cli import main


@pytest.fixture(autouse=True)
def _unconfigure_logging() -> Iterator[None]:
    """`main()` points structlog at pytest's captured stderr, which closes after the test."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def shop(tmp_path: Path) -> tuple[str, str]:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "cart-reminder.yaml").write_text(
        "email:\n"
        "  subject: '{{ customer.first_name }}, your {{ trigger.properties.name }} is waiting'\n"
        "  text: |\n    Hi {{ customer.first_name }},\n    use {{ data.coupon }} at {{ brand.name }}.\n"
        "sms:\n  text: '{{ brand.name }}: {{ customer.nickname }}'\n"
    )
    config = tmp_path / "omnisdk.toml"
    config.write_text(f'[brand]\nname = "Acme"\n[templates]\nfolder = "{folder}"\n')
    store = f"sqlite:///{tmp_path}/shop.db"
    with Omni(store, config=str(config), load_entry_points=False) as omni:
        omni.identify("c-42", email="ada@example.com", traits={"first_name": "Ada"})
        omni.track("c-42", "Product Added", {"name": "Blue Mug"}, channel="web")
        omni.track("c-42", "Product Viewed", {"name": "Red Cup"}, channel="app")
    return store, str(config)


def test_render_previews_a_template_for_a_customer(shop: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    store, config = shop
    code = main(["--store", store, "--config", config, "render", "cart-reminder", "--customer", "c-42",
                 "--channel", "email", "--trigger", "Product Added", "--data", '{"coupon": "SAVE10"}'])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines() == [
        "cart-reminder · email · c-42 · locale default",
        "subject: Ada, your Blue Mug is waiting",
        "text:",
        "  Hi Ada,",
        "  use SAVE10 at Acme.",
    ]


@pytest.mark.parametrize(("argv", "error"), [
    (["render", "cart-reminder", "--customer", "c-42", "--channel", "sms"],
     "template 'cart-reminder', sms.text: undefined variable:"),
    (["render", "nope", "--customer", "c-42"], "unknown template 'nope'"),
    (["render", "cart-reminder", "--customer", "c-404"], "no customer with id 'c-404'"),
    (["render", "cart-reminder", "--customer", "c-42", "--data", "[1]"], "--data: expected a JSON object"),
])
def test_render_reports_what_went_wrong(
    shop: tuple[str, str], capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    store, config = shop
    assert main(["--store", store, "--config", config, *argv]) == 1
    assert error in capsys.readouterr().err
