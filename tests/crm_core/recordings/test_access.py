from dataclasses import dataclass, field

import pytest

from crm_core.recordings.access import RecordingSubject, may_listen, may_read_audit


@dataclass(frozen=True)
class P:  # the shape of crm_core.auth.Principal
    user_id: str
    org_id: str
    role: str
    team_ids: tuple = ()
    permissions: frozenset = field(default_factory=frozenset)


LISTEN = frozenset({"recordings:listen"})
CALL = RecordingSubject(org_id="o1", rep_id="rep1", rep_team_id="tA", reps_review_own=False)


@pytest.mark.parametrize(
    "principal,subject,allowed",
    [
        (P("adm", "o1", "admin", (), LISTEN), CALL, True),
        (P("adm", "o1", "admin"), CALL, False),  # an admin's token without the scope
        (P("adm", "o2", "admin", (), LISTEN), CALL, False),  # another organization's admin
        (P("m", "o1", "manager", ("tA",), LISTEN), CALL, True),
        (P("m", "o1", "manager", ("tB", "tA"), LISTEN), CALL, True),
        (P("m", "o1", "manager", ("tB",), LISTEN), CALL, False),  # not the rep's manager
        (
            P("m", "o1", "manager", ("tA",), frozenset()),
            CALL,
            False,
        ),  # e.g. a token without the scope
        (
            P("m", "o1", "manager", ("tA",), LISTEN),
            RecordingSubject("o1", None, None, False),
            False,
        ),
        (P("rep1", "o1", "rep", ("tA",)), CALL, False),  # org does not allow self-review
        (P("rep1", "o1", "rep", ("tA",)), RecordingSubject("o1", "rep1", "tA", True), True),
        (P("rep2", "o1", "rep", ("tA",)), RecordingSubject("o1", "rep1", "tA", True), False),
        (P("x", "o1", "auditor"), CALL, False),
    ],
)
def test_who_may_listen(principal, subject, allowed):
    decision = may_listen(principal, subject)
    assert decision.allowed is allowed and decision.reason


def test_reps_never_read_the_access_log_even_of_their_own_calls():
    own = RecordingSubject("o1", "rep1", "tA", True)
    assert may_listen(P("rep1", "o1", "rep"), own).allowed
    assert not may_read_audit(P("rep1", "o1", "rep"), own).allowed
    assert may_read_audit(P("m", "o1", "manager", ("tA",), LISTEN), own).allowed
    assert not may_read_audit(P("m", "o1", "manager", ("tB",), LISTEN), own).allowed
