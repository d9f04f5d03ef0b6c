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
