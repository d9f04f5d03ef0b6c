"""The call's checklist: the rule set's checklist rules, each pending, done or missed.

A checklist rule (``trigger: checklist``) names a keyword category the rep must be
heard saying (the recording disclosure, a next step) by a deadline from the call's
start. ``RuleEngine`` records when each item is first heard; this module turns that
into the state the rep's screen ticks off live::

    tracker = ChecklistTracker(rule_set, call_start_ms)
    tracker.update(engine.checklist_done, now_ms)  -> ChecklistState | None (None: unchanged)

An item heard after its deadline is done (late, but done): the screen shows what
was said, and the summary's ``checklist_missed`` lists only items never heard.
"""

from __future__ import annotations

from collections.abc import Mapping

from coaching.records import ChecklistItem, ChecklistState
from coaching.rule_set import Rule, RuleSet


def item_label(rule: Rule) -> str:
    """The rule's own label, else its keyword category in words ("next_step" -> "Next step")."""
    if rule.label:
        return rule.label
    words = (rule.category or rule.id).replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def checklist_state(
    rule_set: RuleSet, done: Mapping[str, int], now_ms: int, call_start_ms: int = 0
) -> ChecklistState:
    """Each checklist rule's status at ``now_ms``; ``done`` maps rule id -> when it was heard."""
    items = []
    for rule in rule_set.rules:
        if rule.trigger != "checklist":
            continue
        due_ms = call_start_ms + round((rule.by_s or 0) * 1000)
        heard = done.get(rule.id)
        if heard is not None:
            status = "done"
        elif now_ms >= due_ms:
            status = "missed"
        else:
            status = "pending"
        items.append(ChecklistItem(rule.id, item_label(rule), status, due_ms, heard))
    return ChecklistState(tuple(items), now_ms)


class ChecklistTracker:
    """Says when the checklist changed, so it is published once per change, not per tick."""

    def __init__(self, rule_set: RuleSet, call_start_ms: int = 0) -> None:
        self._rule_set = rule_set
        self._call_start_ms = call_start_ms
        self._last: tuple[tuple[str, str], ...] | None = None

    @property
    def empty(self) -> bool:
        return not any(r.trigger == "checklist" for r in self._rule_set.rules)

    def use_rule_set(self, rule_set: RuleSet) -> None:
        """Track an edited rule set; a changed list of items is published at the next update."""
        self._rule_set = rule_set

    def state(self, done: Mapping[str, int], now_ms: int) -> ChecklistState:
        return checklist_state(self._rule_set, done, now_ms, self._call_start_ms)

    def update(self, done: Mapping[str, int], now_ms: int) -> ChecklistState | None:
        """The state if any item's status differs from the last one returned (the first call
        always returns it, so the screen shows the list before anything is ticked)."""
        state = self.state(done, now_ms)
        key = tuple((item.id, item.status) for item in state.items)
        if key == self._last:
            return None
        self._last = key
        return state
