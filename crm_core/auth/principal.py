"""Who is making a request, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ROLES = ("rep", "manager", "admin")

# Rights beyond the ownership rules. Admins hold all of them.
PERMISSIONS_BY_ROLE: dict[str, frozenset[str]] = {
    "rep": frozenset(),
    "manager": frozenset({"recordings:listen", "leads:import"}),
    "admin": frozenset({
        "transcripts:raw", "recordings:listen", "leads:import",
        "users:manage", "teams:manage", "api_tokens:manage",
        "webhooks:manage",  # /api/v1/webhooks
        "scoring:manage",  # /api/v1/scoring (train models, edit the ICP)
    }),
}

# API token scopes: "read" allows GET, "write" everything else; a permission
# name as a scope keeps that permission (when the user's role has it).
BASE_SCOPES = frozenset({"read", "write"})
ALL_SCOPES = BASE_SCOPES | PERMISSIONS_BY_ROLE["admin"]


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    org_id: str
    role: Literal["rep", "manager", "admin"]
    team_ids: tuple[str, ...] = ()
    permissions: frozenset[str] = field(default_factory=frozenset)
    territory: str | None = None
    # How the request proved who it is: a browser session cookie, a session
    # token sent as Bearer, or an API token.
    via: Literal["cookie", "session", "api_token"] = "session"
    scopes: frozenset[str] = BASE_SCOPES
    session_id: str | None = None
    api_token_id: str | None = None  # the API token the request came with (via == "api_token")

    def has(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def principal_for_user(
    user: dict, *, via: str, scopes: frozenset[str] | None = None, session_id: str | None = None,
    api_token_id: str | None = None,
) -> Principal:
    """Build the principal of a users row; API token scopes narrow the role's rights."""
    role = user["role"]
    permissions = PERMISSIONS_BY_ROLE[role]
    effective_scopes = BASE_SCOPES if scopes is None else scopes
    if scopes is not None:
        permissions = permissions & scopes
    team_id = user.get("team_id")
    return Principal(
        user_id=str(user["id"]),
        org_id=str(user["org_id"]),
        role=role,
        team_ids=(str(team_id),) if team_id else (),
        permissions=frozenset(permissions),
        territory=user.get("territory"),
        via=via,  # type: ignore[arg-type]
        scopes=frozenset(effective_scopes),
        session_id=session_id,
        api_token_id=api_token_id,
    )
