"""Template budgets: a runaway template stops itself inside the sandbox, fails its own delivery
with the limit it broke, and the runner goes on delivering everyone else's messages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from omnisdk import SMS, ConfigError, Message, Omni, TemplateBudgetExceeded, TemplateError, VirtualClock
from omnisdk.delivery import enqueue_delivery

#: Two nested loops of 10 000 (each range within the budget) are 10^8 iterations: 1 000 times the budget.
RUNAWAY = "{% for i in range(data.n) %}{% for j in range(data.n) %}{% endfor %}{% endfor %}done"


def client(store_url: str, clock: VirtualClock, opened: list[Omni], budget: dict[str, Any]) -> Omni:
    omni = Omni(store_url, clock=clock, load_entry_points=False, config={
        "channels": {"sms": {"provider": "memory"}}, "templates": {"budget": budget},
    })
    opened.append(omni)
    return omni


@pytest.fixture
def make_omni(store_url: str, clock: VirtualClock) -> Iterator[Callable[..., Omni]]:
    """A client on each store, for the delivery tests."""
    opened: list[Omni] = []
    yield lambda **budget: client(store_url, clock, opened, budget)
    for omni in opened:
        omni.close()


@pytest.fixture
def make_previewer(clock: VirtualClock) -> Iterator[Callable[..., Omni]]:
    """A client on an in-memory store, for rendering alone (no store is involved)."""
    opened: list[Omni] = []
    yield lambda **budget: client("sqlite://:memory:", clock, opened, budget)
    for omni in opened:
        omni.close()


def preview(omni: Omni, text: str, **data: Any) -> str:
    message = omni.templates.add(Message("t", sms=SMS(text=text)))
    omni.identify("c-1", phone="+14155550100", traits={"first_name": "Ada"})
    return omni.templates.render(message, "sms", omni.templates.context(omni.customer("c-1"), data=data)).text


def test_a_runaway_template_fails_its_delivery_and_the_others_go_out(make_omni: Callable[..., Omni]) -> None:
    omni = make_omni()
    omni.templates.add(Message("runaway", sms=SMS(text=RUNAWAY)))
    omni.templates.add(Message("hello", sms=SMS(text="Hi {{ customer.first_name }}")))
    for cid, phone, template in (("c-1", "+14155550101", "runaway"), ("c-2", "+14155550102", "hello")):
        omni.identify(cid, phone=phone, traits={"first_name": cid})
        omni.consent(cid, channel="sms", granted=True)
        with omni.store.transaction() as tx:
            enqueue_delivery(tx, key=f"run-{cid}:{template}", customer_id=cid, template=template, channels=["sms"],
                             now=omni.clock.timestamp(), data={"n": 10_000}, run_id=f"run-{cid}", journey="j",
                             step=template)

    omni.run_until_idle()

    [runaway] = omni.deliveries(customer_id="c-1")
    assert runaway.status == "failed"
    assert runaway.error is not None and "templates.budget.max_loop_iterations" in runaway.error
    assert "template 'runaway', sms.text" in runaway.error
    [hello] = omni.deliveries(customer_id="c-2")
    assert hello.status == "sent"
    assert [m.content.text for m in omni.provider("sms").sent] == ["Hi c-2"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "limit"), [
    (RUNAWAY, "max_loop_iterations"),
    ("{% for i in range(data.n * data.n) %}{% endfor %}", "max_range"),
    ("{{ range(10 ** 10) | length }}", "max_range"),
    ("{{ 'x' * 10 ** 9 }}", "max_output_chars"),
    ("{{ [0] * 10 ** 9 }}", "max_output_chars"),
    ("{{ 7 ** data.n ** 2 }}", "max_output_chars"),
    ("{{ 'x' | center(10 ** 9) }}", "max_output_chars"),
    ("{{ 'x'.ljust(10 ** 9) }}", "max_output_chars"),
    ("{{ '%999999999d' % 1 }}", "max_output_chars"),
    ("{{ '{:>999999999}'.format(1) }}", "max_output_chars"),
    ("{{ ('x' * 100000) | replace('x', 'y' * 100) }}", "max_output_chars"),
    ("{% set ns = namespace(s='xx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
     "max_output_chars"),
    ("{% for i in range(data.n) %}{{ 'y' * 1000 }}{% endfor %}", "max_output_chars"),
    ("{% set x %}{% for i in range(data.n) %}" + "z" * 500 + "{% endfor %}{% endset %}", "max_output_chars"),
    ("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}", None),  # RecursionError: a TemplateError all the same
])
def test_each_budget_stops_its_runaway(make_previewer: Callable[..., Omni], text: str, limit: str | None) -> None:
    omni = make_previewer()
    if limit is None:
        with pytest.raises(TemplateError):
            preview(omni, text, n=10_000)
        return
    with pytest.raises(TemplateBudgetExceeded) as caught:
        preview(omni, text, n=10_000)
    assert caught.value.limit == f"templates.budget.{limit}"
    assert f"templates.budget.{limit}" in str(caught.value)


def test_the_wall_clock_budget_stops_a_render(make_previewer: Callable[..., Omni]) -> None:
    omni = make_previewer(max_render_seconds=1e-9)  # over as soon as the first loop iteration looks at the clock
    with pytest.raises(TemplateBudgetExceeded) as caught:
        preview(omni, "{% for i in range(100) %}{{ i }}{% endfor %}")
    assert caught.value.limit == "templates.budget.max_render_seconds"


def test_templates_within_budget_render_as_before(make_previewer: Callable[..., Omni]) -> None:
    omni = make_previewer()
    text = ("{% for i in range(3) %}{{ i }}{% endfor %} {{ customer.first_name | center(7) }}|{{ 'ab' * 2 }}"
            "{{ '%03d' % 7 }}{{ '{:>4}'.format('x') }}{% set ns = namespace(n=0) %}{% for i in range(4) %}"
            "{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}{{ [1, 2] | join('-') }}")
    assert preview(omni, text) == "012   Ada  |abab007   x61-2"


def test_budgets_are_configurable(make_previewer: Callable[..., Omni]) -> None:
    roomy = make_previewer(max_range=50_000, max_loop_iterations=200_000)
    assert preview(roomy, "{% for i in range(data.n) %}{% endfor %}ok", n=40_000) == "ok"
    tight = make_previewer(max_output_chars=10)
    with pytest.raises(TemplateBudgetExceeded, match=r"templates\.budget\.max_output_chars"):
        preview(tight, "{{ customer.first_name }} and some more text")


def test_a_template_that_must_go_over_budget_is_refused_when_added(make_previewer: Callable[..., Omni]) -> None:
    omni = make_previewer()
    with pytest.raises(TemplateBudgetExceeded) as too_big:
        omni.templates.add(Message("r", sms=SMS(text="{% for i in range(10**10) %}x{% endfor %}")))
    assert too_big.value.limit == "templates.budget.max_range"
    with pytest.raises(TemplateBudgetExceeded) as nested:
        omni.templates.add(Message("n", sms=SMS(
            text="{% for i in range(1000) %}{% for j in range(1000) %}{{ j }}{% endfor %}{% endfor %}")))
    assert nested.value.limit == "templates.budget.max_loop_iterations"
    assert "template 'n', sms.text" in str(nested.value)


@pytest.mark.parametrize(("budget", "field"), [
    ({"max_range": -1}, "templates.budget.max_range"),
    ({"max_loop_iterations": 1.5}, "templates.budget.max_loop_iterations"),
    ({"max_render_seconds": "1s"}, "templates.budget.max_render_seconds"),
    ({"max_output_chars": True}, "templates.budget.max_output_chars"),
    ({"max_ranges": 10}, "templates.budget.max_ranges"),
])
def test_bad_budgets_name_the_key(make_previewer: Callable[..., Omni], budget: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_previewer(**budget)
    assert caught.value.field == field
