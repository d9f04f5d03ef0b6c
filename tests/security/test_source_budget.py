"""The SIP port's per-source answer budget (``SourceBudget``), edge by edge, without sockets."""

from __future__ import annotations

import pytest

from voice_server.sip.source_limits import MAX_SOURCES, SourceBudget


@pytest.mark.parametrize(
    "bad",
    [
        {"burst": 0},
        {"burst": -1},
        {"per_s": 0.0},
        {"per_s": -1.0},
        {"total_per_s": 0.0},
        {"total_per_s": -1.0},
        {"max_sources": 0},
    ],
)
def test_source_budget_refuses_a_budget_that_allows_nothing_or_remembers_nothing(bad):
    with pytest.raises(ValueError, match="must be positive"):
        SourceBudget(**{"burst": 1, "per_s": 1.0, "total_per_s": 1.0, **bad})


def test_source_budget_smallest_valid_budget_answers_once_then_refills():
    budget = SourceBudget(burst=1, per_s=0.5, total_per_s=0.5, max_sources=1)
    assert budget.max_sources == 1 and MAX_SOURCES == 4096
    assert budget.allow("a", 0.0)  # the total holds at least one answer, even under 1/s
    assert not budget.allow("a", 1.0)  # half a token back: not enough
    assert budget.allow("a", 2.0)  # a whole one


def test_source_budget_keeps_no_state_for_sources_it_refuses_on_the_total():
    budget = SourceBudget(burst=2, per_s=1.0, total_per_s=1.0, max_sources=1000)
    assert budget.allow("first", 0.0) and len(budget) == 1
    # the total is spent: a spoofed flood is refused and leaves every forged bucket untouched
    assert not any(budget.allow(f"forged{i}", 0.0) for i in range(100))
    assert len(budget) == 1


def test_source_budget_refills_at_per_s_tokens_a_second():
    budget = SourceBudget(burst=2, per_s=0.5, total_per_s=100.0)
    assert budget.allow("a", 0.0) and budget.allow("a", 0.0)
    assert not budget.allow("a", 1.0)  # half a token back
    assert budget.allow("a", 2.0)  # one token back: two seconds at 0.5 a second
    assert not budget.allow("a", 2.0)


def test_source_budget_never_takes_a_clock_step_back_as_time_spent():
    # Callers' clocks may step back (packets handled out of order): no budget is lost for it.
    budget = SourceBudget(burst=1, per_s=1.0, total_per_s=2.0)
    assert budget.allow("a", 10.0)
    assert budget.allow("b", 9.5)  # the total still had one answer left
    assert not budget.allow("c", 9.0)  # and now none
    assert budget.allow("a", 12.0)  # a's bucket refilled from its own last answer
    own = SourceBudget(burst=1, per_s=1.0, total_per_s=100.0)
    assert own.allow("a", 10.0)
    assert not own.allow("a", 9.5)  # the step back neither refills nor overdraws a's bucket
    assert own.allow("a", 10.5)  # one second after the step back, one token


def test_source_budget_remembers_at_most_max_sources_forgetting_the_oldest():
    budget = SourceBudget(burst=1, per_s=0.001, total_per_s=100.0, max_sources=2)
    assert budget.allow("a", 0.0) and budget.allow("b", 0.0) and budget.allow("c", 0.0)
    assert len(budget) == 2
    assert not budget.allow("b", 0.0)  # remembered: spent
    assert budget.allow("a", 0.0)  # forgotten: a full bucket again
