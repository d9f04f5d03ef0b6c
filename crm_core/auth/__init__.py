"""Who may do what: passwords, tokens, sessions, principals and roles."""

from crm_core.auth.http import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, CsrfRejected, authenticate
from crm_core.auth.principal import PERMISSIONS_BY_ROLE, ROLES, Principal

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "PERMISSIONS_BY_ROLE",
    "ROLES",
    "SESSION_COOKIE",
    "CsrfRejected",
    "Principal",
    "authenticate",
]
