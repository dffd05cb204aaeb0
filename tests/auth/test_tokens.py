"""Token storage: only a hash is kept, lookup by id, revocation, scope checks."""

import hashlib

import pytest
from sqlalchemy import text

from nvr.auth.permissions import Permission, Role
from nvr.auth.tokens import (
    TokenError,
    authenticate,
    create_token,
    list_tokens,
    revoke_token,
    split_token,
)
from nvr.index import Index


def test_create_token_stores_only_sha256_of_secret(index: Index) -> None:
    bearer = create_token(index, "alice", Role.VIEWER)

    token_id, secret = split_token(bearer) or ("", "")
    with index.engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM tokens")).mappings().one()

    assert row["id"] == token_id
    assert row["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(secret in str(value) for value in row.values())
    assert len(secret) >= 43  # 32 random bytes, base64url


def test_authenticate_right_token_returns_info_wrong_secret_none(index: Index) -> None:
    bearer = create_token(index, "alice", Role.OPERATOR, cameras=("cam-a",))
    tampered = bearer[:-1] + ("A" if bearer[-1] != "A" else "B")

    info = authenticate(index, bearer)

    assert info is not None and info.name == "alice" and info.cameras == ("cam-a",)
    assert authenticate(index, tampered) is None
    assert authenticate(index, "nvr_ffffffffffffffff_" + "a" * 43) is None
    assert authenticate(index, "garbage") is None


def test_revoke_token_later_authentication_fails(index: Index) -> None:
    bearer = create_token(index, "alice", Role.ADMIN)

    revoke_token(index, "alice")

    assert authenticate(index, bearer) is None
    assert list_tokens(index)[0].revoked_us is not None


def test_create_token_duplicate_name_even_after_revoke_refused(index: Index) -> None:
    create_token(index, "alice", Role.VIEWER)
    revoke_token(index, "alice")

    with pytest.raises(TokenError, match="already exists"):
        create_token(index, "alice", Role.VIEWER)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, "token name"),
        ({"role": Role.ADMIN, "cameras": ("cam-a",)}, "cannot be scoped"),
        ({"cameras": ("cam-a",), "groups": ("general",)}, "not both"),
        ({"cameras": ()}, "empty scope"),
    ],
)
def test_create_token_invalid_request_refused(
    index: Index, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"name": "t", "role": Role.VIEWER, **kwargs}
    with pytest.raises(TokenError, match=message):
        create_token(index, **arguments)  # type: ignore[arg-type]


def test_grants_add_to_role_permissions(index: Index) -> None:
    bearer = create_token(
        index, "aud", Role.AUDITOR, grants=frozenset({Permission.PLAYBACK})
    )

    info = authenticate(index, bearer)

    assert info is not None
    assert Permission.PLAYBACK in info.permissions
    assert Permission.AUDIT_READ in info.permissions
