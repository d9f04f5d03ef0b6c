"""Who is making a request, and what they may do.

Every permission decision is the conjunction of four conditions, each decided here or in
``crm_core.api.access``:

* **role**: ``PERMISSIONS_BY_ROLE`` (rights beyond ownership) and the ownership reach;
* **token scopes**: an API token carries scopes that narrow its user's role, never widen it
  (``Principal.permissions`` is role ∩ scopes; ``Principal.may`` bounds reads and writes per
  resource);
* **ownership**: a rep's own records, a manager's team's, an admin's organization
  (``crm_core.api.access.visible_clause``);
* **tenant**: every statement carries the organization.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ROLES = ("rep", "manager", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}

# Rights beyond the ownership rules. Admins hold all of them.
PERMISSIONS_BY_ROLE: dict[str, frozenset[str]] = {
    "rep": frozenset(),
    "manager": frozenset({"recordings:listen", "leads:import"}),
    "admin": frozenset({
        "transcripts:raw", "recordings:listen", "leads:import",
        "users:manage", "teams:manage", "api_tokens:manage",
        "webhooks:manage",  # /api/v1/webhooks
        "scoring:manage",  # /api/v1/scoring (train models, edit the ICP)
        "organization:manage",  # settings, coaching rules, carrier numbers
        "pipelines:manage",  # /api/v1/pipelines (create pipelines, edit their stages)
    }),
}

# What API token scopes bound, per operation: the resource it acts on and whether it reads
# (GET) or writes (everything else). Each operation names its resource (crm_core.api.endpoint).
RESOURCES = frozenset({
    "leads", "deals", "calls", "activities", "users", "teams", "api_tokens", "webhooks",
    "scoring", "recordings", "privacy", "organization", "pipelines",
})
VERBS = ("read", "write")
# Reading who one is (GET /me): any valid token may, whatever its scopes.
SELF = "self"

# API token scopes: "read" allows reading every resource, "write" changing every resource;
# "<resource>:read" / "<resource>:write" the same for one resource; a permission name as a
# scope keeps that permission (when the user's role has it).
BASE_SCOPES = frozenset(VERBS)
RESOURCE_SCOPES = frozenset(f"{resource}:{verb}" for resource in RESOURCES for verb in VERBS)
PERMISSION_SCOPES = PERMISSIONS_BY_ROLE["admin"]
ALL_SCOPES = BASE_SCOPES | RESOURCE_SCOPES | PERMISSION_SCOPES


def verb_of(method: str) -> Literal["read", "write"]:
    return "read" if method.upper() in ("GET", "HEAD", "OPTIONS") else "write"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    org_id: str
    role: Literal["rep", "manager", "admin"]
    team_ids: tuple[str, ...] = ()
    # The role's rights, narrowed by the token's scopes (an API token); never more than the role.
    permissions: frozenset[str] = field(default_factory=frozenset)
    territory: str | None = None
    # How the request proved who it is: a browser session cookie, a session
    # token sent as Bearer, or an API token.
    via: Literal["cookie", "session", "api_token"] = "session"
    scopes: frozenset[str] = BASE_SCOPES
    session_id: str | None = None
    api_token_id: str | None = None  # the API token the request came with (via == "api_token")

    def has(self, permission: str) -> bool:
        """The permission, when both the role and (for an API token) the scopes grant it."""
        return permission in self.permissions

    def may(self, verb: str, resource: str | None) -> bool:
        """Do the scopes allow ``verb`` ("read"/"write") on ``resource``?

        ``resource`` None is an operation on no particular resource: only the all-resource
        scope ("read"/"write") allows it, so a narrow token is refused where nobody said what
        it touches.
        """
        if verb in self.scopes or (resource == SELF and verb == "read"):
            return True
        return resource is not None and f"{resource}:{verb}" in self.scopes

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def grantable_scopes(self) -> frozenset[str]:
        """The scopes a token this principal mints may carry: only what it holds itself.

        Permission scopes only where its role holds them (and its own scopes kept them);
        resource scopes where its own scopes cover them.
        """
        grantable = set(self.permissions)
        for verb in VERBS:
            if verb in self.scopes:
                grantable.add(verb)
                grantable |= {f"{resource}:{verb}" for resource in RESOURCES}
            else:
                grantable |= {s for s in self.scopes if s in RESOURCE_SCOPES and s.endswith(f":{verb}")}
        return frozenset(grantable)


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
