"""Ownership rules, one place for every resource.

A rep sees and edits the records they own; a manager also those owned by
members of their team(s); an admin everything in the organization. Records
outside a principal's reach answer 404, exactly like records that do not
exist, so ids cannot be probed. Every query carries the organization.
"""

from __future__ import annotations

from crm_core.api.listing import SqlParams
from crm_core.api_errors import Forbidden
from crm_core.auth.principal import Principal


def visible_clause(me: Principal, params: SqlParams, *, alias: str, owner_column: str,
                   territory_column: str | None = None) -> list[str]:
    """WHERE fragments limiting ``alias`` to the organization and the principal's reach.

    With ``territory_column`` (leads), a non-admin who has a territory sees only records in
    that territory or in none.
    """
    clauses = [f"{alias}.org_id = {params.add(me.org_id)}"]
    owner = f"{alias}.{owner_column}"
    if me.role == "admin":
        return clauses
    if territory_column is not None and me.territory:
        column = f"{alias}.{territory_column}"
        clauses.append(f"({column} IS NULL OR {column} = {params.add(me.territory)})")
    if me.role == "manager" and me.team_ids:
        user = params.add(me.user_id)
        teams = params.add(list(me.team_ids))
        clauses.append(
            f"({owner} = {user} OR {owner} IN (SELECT tu.id FROM users tu "
            f"WHERE tu.org_id = {alias}.org_id AND tu.team_id = ANY({teams}::uuid[])))"
        )
    else:
        clauses.append(f"{owner} = {params.add(me.user_id)}")
    return clauses


async def check_assignable(conn, me: Principal, owner_id: str | None) -> None:
    """May ``me`` give a record to ``owner_id``? Reps: only themselves; managers: their team.

    ``None`` (unassigned) is for managers and admins: a rep would lose sight of the record.
    """
    if owner_id == me.user_id:
        return
    if owner_id is None:
        if me.role == "rep":
            raise Forbidden("reps cannot unassign records", code="invalid_owner")
        return
    row = await conn.fetchrow("SELECT team_id, is_active FROM users WHERE id = $1 AND org_id = $2",
                              owner_id, me.org_id)
    if row is None or not row["is_active"]:
        raise Forbidden("owner_id is not an active user of this organization", {"owner_id": owner_id},
                        code="invalid_owner")
    if me.role == "admin":
        return
    if me.role == "manager" and row["team_id"] is not None and str(row["team_id"]) in me.team_ids:
        return
    raise Forbidden("you may not assign records to that user", {"owner_id": owner_id},
                    code="invalid_owner")


def require(me: Principal, permission: str) -> None:
    if not me.has(permission):
        raise Forbidden(f"this needs the {permission!r} permission", {"permission": permission})
