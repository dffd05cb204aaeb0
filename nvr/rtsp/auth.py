"""RTSP authentication: Basic (RFC 7617) and Digest (RFC 7616, MD5 and SHA-256).

A camera answers 401 with one or more WWW-Authenticate challenges; the client picks the
strongest it supports and signs every later request. The password never leaves this
module except inside the Authorization header sent to the camera.
"""

import base64
import hashlib
import os
from dataclasses import dataclass
from urllib.request import parse_http_list

_DIGESTS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


@dataclass
class Challenge:
    scheme: str  # "basic" or "digest"
    params: dict[str, str]


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Every challenge in the WWW-Authenticate headers, strongest first."""
    found = []
    for value in values:
        scheme, _, rest = value.strip().partition(" ")
        found.append(Challenge(scheme.lower(), _params(rest)))
    usable = [c for c in found if c.scheme == "basic" or _digest_usable(c)]
    return sorted(usable, key=_strength, reverse=True)


def _params(rest: str) -> dict[str, str]:
    """``realm="cam", nonce="abc"`` into a dict, names lower case, quotes removed.

    Tolerant where urllib's parse_keqv_list is not: an empty value (``opaque=``) is
    kept as "" instead of raising IndexError, and an item without "=" is skipped.
    """
    params: dict[str, str] = {}
    for item in parse_http_list(rest):
        name, sep, raw = item.partition("=")
        if not sep:
            continue
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1]
        params[name.strip().lower()] = raw
    return params


def _digest_usable(challenge: Challenge) -> bool:
    if challenge.scheme != "digest" or "nonce" not in challenge.params:
        return False
    return _algorithm(challenge) in _DIGESTS


def _algorithm(challenge: Challenge) -> str:
    return challenge.params.get("algorithm", "MD5").upper()


def _strength(challenge: Challenge) -> int:
    if challenge.scheme == "basic":
        return 0
    return 2 if _algorithm(challenge) == "SHA-256" else 1


class Authenticator:
    """Signs requests for one challenge; the nonce count grows per request."""

    def __init__(self, credentials: Credentials, challenge: Challenge) -> None:
        self._credentials = credentials
        self._challenge = challenge
        self._count = 0

    @property
    def scheme(self) -> str:
        return self._challenge.scheme

    def header(self, method: str, uri: str) -> str:
        """The Authorization header value for one request."""
        user, password = self._credentials.user, self._credentials.password
        if self._challenge.scheme == "basic":
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            return f"Basic {token}"
        return self._digest(method, uri)

    def _digest(self, method: str, uri: str) -> str:
        params = self._challenge.params
        algorithm = _algorithm(self._challenge)
        digest = _DIGESTS[algorithm]

        def h(text: str) -> str:
            return digest(text.encode("utf-8")).hexdigest()

        realm, nonce = params.get("realm", ""), params["nonce"]
        ha1 = h(f"{self._credentials.user}:{realm}:{self._credentials.password}")
        ha2 = h(f"{method}:{uri}")
        qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
        fields = [
            f'username="{self._credentials.user}"',
            f'realm="{realm}"',
            f'nonce="{nonce}"',
            f'uri="{uri}"',
        ]
        if "auth" in qops:
            self._count += 1
            nc = f"{self._count:08x}"
            cnonce = os.urandom(8).hex()
            response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = h(f"{ha1}:{nonce}:{ha2}")
        fields.append(f'response="{response}"')
        if "algorithm" in params:
            fields.append(f"algorithm={algorithm}")
        if "opaque" in params:
            fields.append(f'opaque="{params["opaque"]}"')
        return "Digest " + ", ".join(fields)
