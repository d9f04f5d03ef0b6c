"""The permission algebra of ``Principal`` on its own: role ∧ token scopes, and what a token may
mint. The API-level tests (test_token_scopes.py, the authorization matrix) show it applied."""

from __future__ import annotations

import uuid

import pytest

from crm_core.auth.principal import (
    ALL_SCOPES,
    BASE_SCOPES,
    PERMISSIONS_BY_ROLE,
    RESOURCE_SCOPES,
    RESOURCES,
    SELF,
    principal_for_user,
    verb_of,
)

ADMIN_RIGHTS = {
    "transcripts:raw",
    "recordings:listen",
    "leads:import",
    "users:manage",
    "teams:manage",
    "api_tokens:manage",
    "webhooks:manage",
    "scoring:manage",
    "organization:manage",
    "pipelines:manage",
}


def _user(role: str, **more) -> dict:
    return {"id": uuid.uuid4(), "org_id": uuid.uuid4(), "role": role, **more}


@pytest.mark.parametrize(
    ("method", "verb"),
    [
        ("GET", "read"),
        ("get", "read"),
        ("HEAD", "read"),
        ("OPTIONS", "read"),
        ("POST", "write"),
        ("PUT", "write"),
        ("PATCH", "write"),
        ("DELETE", "write"),
    ],
)
def test_verb_of_a_method(method, verb):
    assert verb_of(method) == verb


def test_role_rights_are_the_documented_table():
    assert PERMISSIONS_BY_ROLE == {
        "rep": frozenset(),
        "manager": frozenset({"recordings:listen", "leads:import"}),
        "admin": frozenset(ADMIN_RIGHTS),
    }
    assert BASE_SCOPES == {"read", "write"}
    assert ALL_SCOPES == BASE_SCOPES | RESOURCE_SCOPES | ADMIN_RIGHTS
    assert len(RESOURCE_SCOPES) == 2 * len(RESOURCES) == 26


def test_a_session_holds_its_role_and_both_base_scopes():
    user = _user("manager", team_id=uuid.uuid4(), territory="north")
    me = principal_for_user(user, via="cookie", session_id="s1")
    assert me.permissions == PERMISSIONS_BY_ROLE["manager"] and me.scopes == BASE_SCOPES
    assert (me.user_id, me.org_id) == (str(user["id"]), str(user["org_id"]))
    assert me.team_ids == (str(user["team_id"]),) and me.territory == "north"
    assert (me.via, me.session_id, me.api_token_id) == ("cookie", "s1", None)
    assert me.has("leads:import") and not me.has("users:manage") and not me.is_admin
    assert principal_for_user(_user("rep", team_id=None), via="session").team_ids == ()


def test_token_scopes_narrow_the_role_and_never_widen_it():
    admin = principal_for_user(
        _user("admin"),
        via="api_token",
        scopes=frozenset({"read", "users:manage"}),
        api_token_id="t1",
    )
    assert admin.is_admin and admin.permissions == {"users:manage"}
    assert admin.has("users:manage") and not admin.has("recordings:listen")
    assert admin.api_token_id == "t1" and admin.scopes == {"read", "users:manage"}
    rep = principal_for_user(_user("rep"), via="api_token", scopes=frozenset(ALL_SCOPES))
    assert rep.permissions == frozenset()  # every scope, still a rep's rights
    # an empty scope set is no scope at all, not "the default"
    nothing = principal_for_user(_user("admin"), via="api_token", scopes=frozenset())
    assert nothing.permissions == frozenset() and nothing.scopes == frozenset()
    assert not nothing.may("read", "leads")


def test_may_reads_and_writes_per_resource():
    def me(*scopes: str):
        return principal_for_user(_user("admin"), via="api_token", scopes=frozenset(scopes))

    reader = me("read")
    assert reader.may("read", "leads") and reader.may("read", None)
    assert not reader.may("write", "leads") and not reader.may("write", None)
    narrow = me("leads:read", "deals:write")
    assert narrow.may("read", "leads") and narrow.may("write", "deals")
    assert not narrow.may("write", "leads") and not narrow.may("read", "deals")
    assert not narrow.may("read", "calls")
    assert not narrow.may("read", None)  # no resource named: only the all-resource scope
    # who one is may always be read, never written without the write scope
    assert narrow.may("read", SELF) and not narrow.may("write", SELF)
    assert me("write").may("write", SELF) and me("write").may("write", None)


def test_a_token_mints_only_scopes_it_holds():
    admin = principal_for_user(_user("admin"), via="session")
    assert admin.grantable_scopes() == ALL_SCOPES
    reader = principal_for_user(
        _user("admin"),
        via="api_token",
        scopes=frozenset({"read", "api_tokens:manage", "leads:write"}),
    )
    assert reader.grantable_scopes() == (
        {"read", "api_tokens:manage", "leads:write"}
        | {f"{resource}:read" for resource in RESOURCES}
    )
    manager = principal_for_user(
        _user("manager"), via="api_token", scopes=frozenset({"write", "users:manage", "calls:read"})
    )
    assert manager.grantable_scopes() == (
        {"write", "calls:read"} | {f"{resource}:write" for resource in RESOURCES}
    )
