"""Who may do what: roles, their permissions, and the one table of route permissions.

Every route of the app must appear in ``ROUTE_PERMISSIONS``; the auth middleware answers
403 for a route missing from it (deny by default), and ``tests/auth/test_matrix.py``
fails for it. To add a route, add one line here::

    ("POST", "/api/v1/exports"): Permission.EXPORTS_WRITE,

Keys are the HTTP method and the route's canonical path exactly as registered with
aiohttp (``{name}`` placeholders included); HEAD is looked up as GET.
"""

from enum import StrEnum


class Permission(StrEnum):
    """One thing a token may do. PUBLIC routes need no token at all."""

    PUBLIC = "public"
    CAMERAS_READ = "cameras:read"
    RECORDINGS_READ = "recordings:read"
    PLAYBACK = "playback"
    EXPORTS_READ = "exports:read"
    EXPORTS_WRITE = "exports:write"
    HOLDS_READ = "holds:read"
    HOLDS_WRITE = "holds:write"
    KEYS_READ = "keys:read"
    VERIFY = "verify"
    AUDIT_READ = "audit:read"
    ARCHIVE_AUDIT = "archive:audit"
    STORAGE_READ = "storage:read"
    """Replication status: S3 backlog, errors (issue 3)."""
    METRICS = "metrics"
    """Prometheus metrics at /metrics (issue 7)."""
    ADMIN = "admin"
    """Cameras, groups, retention and tokens."""


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    AUDITOR = "auditor"
    MONITOR = "monitor"
    """A Prometheus scraper: metrics only (issue 7)."""


_VIEWER = frozenset(
    {
        Permission.CAMERAS_READ,
        Permission.RECORDINGS_READ,
        Permission.PLAYBACK,
        Permission.KEYS_READ,
    }
)
_OPERATOR = _VIEWER | {
    Permission.EXPORTS_READ,
    Permission.EXPORTS_WRITE,
    Permission.HOLDS_READ,
    Permission.HOLDS_WRITE,
    Permission.STORAGE_READ,
    Permission.METRICS,
}
# Note: an auditor sees what is recorded (listings carry each segment's SHA-256) but
# plays nothing back unless the token is also granted Permission.PLAYBACK.
_AUDITOR = frozenset(
    {
        Permission.CAMERAS_READ,
        Permission.RECORDINGS_READ,
        Permission.KEYS_READ,
        Permission.EXPORTS_READ,
        Permission.HOLDS_READ,
        Permission.VERIFY,
        Permission.AUDIT_READ,
        Permission.ARCHIVE_AUDIT,
        Permission.STORAGE_READ,
        Permission.METRICS,
    }
)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEWER,
    Role.OPERATOR: _OPERATOR,
    Role.AUDITOR: _AUDITOR,
    Role.MONITOR: frozenset({Permission.METRICS}),
    Role.ADMIN: frozenset(Permission) - {Permission.PUBLIC},
}

# (method, canonical path) -> the permission a token needs; see the module docstring.
ROUTE_PERMISSIONS: dict[tuple[str, str], Permission] = {
    ("GET", "/healthz"): Permission.PUBLIC,
    ("GET", "/readyz"): Permission.PUBLIC,
    ("GET", "/api/v1/cameras"): Permission.CAMERAS_READ,
    ("GET", "/api/v1/cameras/{camera_id}/recordings"): Permission.RECORDINGS_READ,
    ("GET", "/api/v1/cameras/{camera_id}/video.mp4"): Permission.PLAYBACK,
    # evidence (issue 5)
    ("POST", "/api/v1/exports"): Permission.EXPORTS_WRITE,
    ("GET", "/api/v1/exports/{export_id}"): Permission.EXPORTS_READ,
    ("GET", "/api/v1/exports/{export_id}/download"): Permission.EXPORTS_WRITE,
    ("GET", "/api/v1/keys"): Permission.KEYS_READ,
    ("POST", "/api/v1/verify"): Permission.VERIFY,
    ("POST", "/api/v1/holds"): Permission.HOLDS_WRITE,
    ("GET", "/api/v1/holds"): Permission.HOLDS_READ,
    ("DELETE", "/api/v1/holds/{hold_id}"): Permission.HOLDS_WRITE,
    ("GET", "/api/v1/audit"): Permission.AUDIT_READ,
    ("GET", "/api/v1/storage"): Permission.STORAGE_READ,  # S3 replication (issue 3)
    # retention (issue 4): policy is readable by whoever sees storage; changes are admin
    ("GET", "/api/v1/groups"): Permission.STORAGE_READ,
    ("POST", "/api/v1/groups"): Permission.ADMIN,
    ("PATCH", "/api/v1/groups/{name}"): Permission.ADMIN,
    ("PUT", "/api/v1/cameras/{camera_id}/group"): Permission.ADMIN,
    ("GET", "/api/v1/retention/plan"): Permission.STORAGE_READ,
    # health (issue 7): the document is public; metrics need a token (Prometheus sends one)
    ("GET", "/metrics"): Permission.METRICS,
    ("GET", "/api/v1/openapi.json"): Permission.PUBLIC,
    (
        "GET",
        "/api/v1/workers",
    ): Permission.STORAGE_READ,  # ingest load (issue 6): ops view
}


# Views of the whole system that name every camera (state, load, backlog): a token
# scoped to cameras or groups is refused them. Views that list cameras filter instead.
WHOLE_SYSTEM_ROUTES = frozenset({"/metrics", "/api/v1/workers", "/api/v1/storage"})


def route_permission(method: str, path_pattern: str) -> Permission | None:
    """The permission declared for a route, or None when it has none (deny)."""
    lookup = "GET" if method == "HEAD" else method
    return ROUTE_PERMISSIONS.get((lookup, path_pattern))
