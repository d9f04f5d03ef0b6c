"""Who may listen to a call's recording, and who may see who listened.

Pure rules over the caller's principal (``crm_core.auth.Principal``: user_id,
org_id, role, team_ids, permissions) and the recording's subject, so they are
tested without a server. Admins may listen to every recording of their
organization, managers to those of reps in their teams, both with the
``recordings:listen`` permission (an API token keeps it only with that
scope); reps to their own calls when the organization allows it
(``organizations.settings.reps_review_own_recordings``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

LISTEN_PERMISSION = "recordings:listen"


class PrincipalLike(Protocol):
    user_id: str
    org_id: str
    role: str
    team_ids: tuple[str, ...]
    permissions: frozenset[str]


@dataclass(frozen=True, slots=True)
class RecordingSubject:
    """The facts about a call that decide access to its recording."""

    org_id: str
    rep_id: str | None
    rep_team_id: str | None
    reps_review_own: bool


@dataclass(frozen=True, slots=True)
class AccessDecision:
    allowed: bool
    reason: str


def may_listen(principal: PrincipalLike, subject: RecordingSubject) -> AccessDecision:
    """Role ∧ permission (the role's, narrowed by an API token's scopes) ∧ the rep's team."""
    if str(principal.org_id) != str(subject.org_id):
        return AccessDecision(False, "the call belongs to another organization")
    if principal.role in ("admin", "manager") and LISTEN_PERMISSION not in principal.permissions:
        # an admin's role holds it; a token whose scopes dropped it does not
        return AccessDecision(False, f"missing permission {LISTEN_PERMISSION}")
    if principal.role == "admin":
        return AccessDecision(True, "admin")
    if principal.role == "manager":
        if subject.rep_team_id is not None and str(subject.rep_team_id) in map(
            str, principal.team_ids
        ):
            return AccessDecision(True, "manager of the rep's team")
        return AccessDecision(False, "the rep is not in one of the manager's teams")
    if principal.role == "rep":
        if subject.rep_id is None or str(subject.rep_id) != str(principal.user_id):
            return AccessDecision(False, "reps may only listen to their own calls")
        if not subject.reps_review_own:
            return AccessDecision(
                False, "the organization does not let reps review their own recordings"
            )
        return AccessDecision(True, "rep reviewing an own call")
    return AccessDecision(False, f"role {principal.role!r} may not listen to recordings")


def may_read_audit(principal: PrincipalLike, subject: RecordingSubject) -> AccessDecision:
    """The access log of a recording: its rep's managers and admins (never the rep)."""
    if principal.role == "rep":
        return AccessDecision(False, "reps may not read recording access logs")
    return may_listen(principal, subject)
