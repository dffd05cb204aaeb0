"""Bearer tokens: their format, the stored hash, and create/list/revoke/authenticate.

A token reads ``nvr_<id>_<secret>``: ``id`` is 16 hex digits, public, the primary key
used for lookup; ``secret`` is ``secrets.token_urlsafe(32)`` (256 random bits). Only the
SHA-256 hex of the secret is stored, and it is compared with ``hmac.compare_digest``.

Note: no slow KDF (bcrypt, scrypt, argon2) is needed. Those make guessing a
low-entropy human password from its hash expensive; a 256-bit random secret cannot be
guessed at any hash speed, so a fast hash loses nothing and keeps every request cheap.

Every function here runs one blocking index transaction: call it off the event loop.
"""

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from nvr.auth.permissions import ROLE_PERMISSIONS, Permission, Role
from nvr.errors import NvrError, StorageError
from nvr.index.models import Token
from nvr.index.repo import Index

PREFIX = "nvr_"
ID_HEX_DIGITS = 16
SECRET_BYTES = 32
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_TOKEN_PATTERN = re.compile(r"^nvr_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})$")
# Compared against when the id is unknown, so both paths cost one digest comparison.
_DUMMY_SHA256 = hashlib.sha256(b"no such token").hexdigest()


class TokenError(NvrError):
    """A token cannot be created or revoked as asked (bad name, role or scope)."""


@dataclass(frozen=True)
class TokenInfo:
    """A token as the API and CLI see it; never holds the secret or its hash."""

    id: str
    name: str
    role: Role
    cameras: tuple[str, ...] | None
    groups: tuple[str, ...] | None
    grants: frozenset[Permission]
    created_us: int
    revoked_us: int | None

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS[self.role] | self.grants

    @property
    def scoped(self) -> bool:
        return self.cameras is not None or self.groups is not None

    def may_access_camera(self, camera_id: str, group: str | None) -> bool:
        """Whether the token's camera or group scope covers this camera."""
        if not self.scoped:
            return True
        if self.cameras is not None and camera_id in self.cameras:
            return True
        return self.groups is not None and group is not None and group in self.groups

    def scope_text(self) -> str:
        if self.cameras is not None:
            return "cameras=" + ",".join(self.cameras)
        if self.groups is not None:
            return "groups=" + ",".join(self.groups)
        return "all"


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def split_token(bearer: str) -> tuple[str, str] | None:
    """The (id, secret) parts of a well-formed token, else None."""
    match = _TOKEN_PATTERN.match(bearer)
    return (match.group(1), match.group(2)) if match else None


def _json_list(values: tuple[str, ...] | None) -> str | None:
    return None if values is None else json.dumps(list(values))


def _tuple(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(json.loads(text))


def _info(row: Token) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        cameras=_tuple(row.cameras),
        groups=_tuple(row.groups),
        grants=frozenset(Permission(p) for p in _tuple(row.grants) or ()),
        created_us=row.created_us,
        revoked_us=row.revoked_us,
    )


def _check_request(
    name: str,
    role: Role,
    cameras: tuple[str, ...] | None,
    groups: tuple[str, ...] | None,
) -> None:
    if not NAME_PATTERN.match(name):
        raise TokenError(
            f"token name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-'"
        )
    if cameras is not None and groups is not None:
        raise TokenError("scope a token by cameras or by groups, not both")
    if role is Role.ADMIN and (cameras is not None or groups is not None):
        raise TokenError("an admin token cannot be scoped: admins manage every camera")
    if cameras == () or groups == ():
        raise TokenError("an empty scope would allow nothing; omit it for all cameras")


def create_token(
    index: Index,
    name: str,
    role: Role,
    *,
    cameras: tuple[str, ...] | None = None,
    groups: tuple[str, ...] | None = None,
    grants: frozenset[Permission] = frozenset(),
) -> str:
    """Stores a new token and returns its bearer string, which is never shown again.

    Raises TokenError for a bad or already used name (names stay taken after revocation
    so audit entries keep one meaning) and for an invalid scope.
    """
    _check_request(name, role, cameras, groups)
    token_id = secrets.token_hex(ID_HEX_DIGITS // 2)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    row = Token(
        id=token_id,
        name=name,
        role=role.value,
        secret_sha256=secret_sha256(secret),
        cameras=_json_list(cameras),
        groups=_json_list(groups),
        grants=json.dumps(sorted(grants)) if grants else None,
        created_us=index.clock(),
        revoked_us=None,
    )
    try:
        with index.write() as session:
            if session.scalar(select(Token.id).where(Token.name == name)) is not None:
                raise TokenError(f"a token named {name!r} already exists")
            session.add(row)
    except StorageError as exc:
        if isinstance(exc.__cause__, IntegrityError):
            raise TokenError(f"a token named {name!r} already exists") from exc
        raise
    return f"{PREFIX}{token_id}_{secret}"


def list_tokens(index: Index) -> list[TokenInfo]:
    """Every token, revoked ones included, oldest first."""
    with index.read() as session:
        rows = session.scalars(select(Token).order_by(Token.created_us, Token.name))
        return [_info(row) for row in rows]


def revoke_token(index: Index, name: str) -> TokenInfo:
    """Marks the named token revoked (idempotent); raises TokenError if none has it."""
    with index.write() as session:
        row = session.scalar(select(Token).where(Token.name == name))
        if row is None:
            raise TokenError(f"no token named {name!r}")
        if row.revoked_us is None:
            row.revoked_us = index.clock()
        return _info(row)


def active_token_count(index: Index) -> int:
    with index.read() as session:
        rows = session.scalars(select(Token.id).where(Token.revoked_us.is_(None)))
        return len(list(rows))


def authenticate(index: Index, bearer: str) -> TokenInfo | None:
    """The active token matching ``bearer``, or None (malformed, unknown, revoked)."""
    parts = split_token(bearer)
    if parts is None:
        return None
    token_id, secret = parts
    with index.read() as session:
        row = session.get(Token, token_id)
        stored = row.secret_sha256 if row is not None else _DUMMY_SHA256
        if not hmac.compare_digest(secret_sha256(secret), stored):
            return None
        if row is None or row.revoked_us is not None:
            return None
        return _info(row)
