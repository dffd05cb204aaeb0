"""API authentication and authorization: roles, bearer tokens, the route permission table."""

from nvr.auth.middleware import AUTH, Authenticator, auth_middleware
from nvr.auth.permissions import ROLE_PERMISSIONS, ROUTE_PERMISSIONS, Permission, Role
from nvr.auth.tokens import TokenError, TokenInfo

__all__ = [
    "AUTH",
    "ROLE_PERMISSIONS",
    "ROUTE_PERMISSIONS",
    "Authenticator",
    "Permission",
    "Role",
    "TokenError",
    "TokenInfo",
    "auth_middleware",
]
