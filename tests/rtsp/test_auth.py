"""Basic (RFC 7617) and Digest (RFC 2617, RFC 7616) authentication, checked against the
RFCs' worked examples and against digests computed here with hashlib."""

import base64
import hashlib
from urllib.request import parse_http_list, parse_keqv_list

import pytest

from nvr.rtsp import auth
from nvr.rtsp.auth import Authenticator, Challenge, Credentials, parse_challenges

MUFASA = Credentials("Mufasa", "Circle Of Life")
RFC_2617_CHALLENGE = Challenge(
    "digest",
    {
        "realm": "testrealm@host.com",
        "qop": "auth,auth-int",
        "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "opaque": "5ccc069c403ebaf9f0171e9517f40e41",
    },
)


class FixedNonce:
    """Stands in for ``os.urandom``'s bytes so the client nonce is the RFC's."""

    def __init__(self, cnonce: str) -> None:
        self.cnonce = cnonce

    def hex(self) -> str:
        return self.cnonce


def digest_fields(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme == "Digest"
    return parse_keqv_list(parse_http_list(rest))


def expected_response(
    algorithm: str,
    credentials: Credentials,
    params: dict[str, str],
    method: str,
    uri: str,
) -> str:
    """RFC 7616 §3.4.1: KD(H(A1), nonce:nc:cnonce:qop:H(A2)), or RFC 2069's
    KD(H(A1), nonce:H(A2)) without qop."""

    def h(text: str) -> str:
        return hashlib.new(algorithm, text.encode()).hexdigest()

    ha1 = h(f"{credentials.user}:{params['realm']}:{credentials.password}")
    ha2 = h(f"{method}:{uri}")
    if "qop" in params:
        return h(
            f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:"
            f"{params['qop']}:{ha2}"
        )
    return h(f"{ha1}:{params['nonce']}:{ha2}")


def test_authenticator_basic_rfc_7617_example() -> None:
    signer = Authenticator(
        Credentials("Aladdin", "open sesame"), Challenge("basic", {})
    )

    assert (
        signer.header("DESCRIBE", "rtsp://cam/") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    )


def test_authenticator_basic_non_ascii_password_utf8_encoded() -> None:
    signer = Authenticator(Credentials("admin", "pässwörd:1"), Challenge("basic", {}))

    token = signer.header("OPTIONS", "rtsp://cam/").removeprefix("Basic ")

    assert base64.b64decode(token) == "admin:pässwörd:1".encode()


def test_authenticator_digest_rfc_2617_example_response(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth.os, "urandom", lambda size: FixedNonce("0a4f113b"))
    signer = Authenticator(MUFASA, RFC_2617_CHALLENGE)

    fields = digest_fields(signer.header("GET", "/dir/index.html"))

    # RFC 2617 §3.5
    assert fields["response"] == "6629fae49393a05397450978507c4ef1"
    assert fields == {
        "username": "Mufasa",
        "realm": "testrealm@host.com",
        "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "uri": "/dir/index.html",
        "qop": "auth",
        "nc": "00000001",
        "cnonce": "0a4f113b",
        "response": "6629fae49393a05397450978507c4ef1",
        "opaque": "5ccc069c403ebaf9f0171e9517f40e41",
    }


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_authenticator_digest_rfc_7616_example_response(
    monkeypatch: pytest.MonkeyPatch, algorithm: str, response: str
) -> None:
    cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    monkeypatch.setattr(auth.os, "urandom", lambda size: FixedNonce(cnonce))
    challenge = Challenge(
        "digest",
        {
            "realm": "http-auth@example.org",
            "qop": "auth, auth-int",
            "algorithm": algorithm,
            "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
        },
    )
    signer = Authenticator(Credentials("Mufasa", "Circle of Life"), challenge)

    header = signer.header("GET", "/dir/index.html")

    # RFC 7616 §3.9.1
    fields = digest_fields(header)
    assert fields["response"] == response
    assert f"algorithm={algorithm}," in header  # a token, unquoted (RFC 7616 §3.4)
    assert fields["opaque"] == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def test_authenticator_digest_random_cnonce_response_matches_hashlib() -> None:
    signer = Authenticator(MUFASA, RFC_2617_CHALLENGE)
    uri = "rtsp://192.0.2.10:554/Streaming/Channels/101"

    fields = digest_fields(signer.header("DESCRIBE", uri))

    assert len(fields["cnonce"]) >= 16
    assert fields["response"] == expected_response(
        "md5", MUFASA, {**RFC_2617_CHALLENGE.params, **fields}, "DESCRIBE", uri
    )


def test_authenticator_digest_nonce_count_grows_per_request() -> None:
    signer = Authenticator(MUFASA, RFC_2617_CHALLENGE)

    first = digest_fields(signer.header("SETUP", "rtsp://cam/s/trackID=1"))
    second = digest_fields(signer.header("PLAY", "rtsp://cam/s/"))

    assert (first["nc"], second["nc"]) == ("00000001", "00000002")
    assert first["cnonce"] != second["cnonce"]
    assert second["response"] == expected_response(
        "md5",
        MUFASA,
        {**RFC_2617_CHALLENGE.params, **second},
        "PLAY",
        "rtsp://cam/s/",
    )


def test_authenticator_digest_without_qop_uses_rfc_2069_response() -> None:
    challenge = Challenge("digest", {"realm": "IP Camera", "nonce": "a1b2c3"})
    signer = Authenticator(Credentials("admin", "12345"), challenge)

    header = signer.header("DESCRIBE", "rtsp://cam/live")

    fields = digest_fields(header)
    assert set(fields) == {"username", "realm", "nonce", "uri", "response"}
    assert fields["response"] == expected_response(
        "md5",
        Credentials("admin", "12345"),
        challenge.params,
        "DESCRIBE",
        "rtsp://cam/live",
    )
    assert "algorithm" not in header and "opaque" not in header


def test_authenticator_digest_qop_auth_int_only_falls_back_to_no_qop() -> None:
    challenge = Challenge("digest", {"realm": "r", "nonce": "n", "qop": "auth-int"})
    signer = Authenticator(MUFASA, challenge)

    fields = digest_fields(signer.header("OPTIONS", "rtsp://cam/"))

    assert "qop" not in fields
    assert fields["response"] == expected_response(
        "md5", MUFASA, {"realm": "r", "nonce": "n"}, "OPTIONS", "rtsp://cam/"
    )


def test_parse_challenges_strongest_first() -> None:
    challenges = parse_challenges(
        [
            'Basic realm="cam"',
            'Digest realm="cam", nonce="n1"',
            'Digest realm="cam", nonce="n2", algorithm=SHA-256, qop="auth"',
        ]
    )

    assert [(c.scheme, c.params.get("nonce")) for c in challenges] == [
        ("digest", "n2"),
        ("digest", "n1"),
        ("basic", None),
    ]


def test_parse_challenges_params_unquoted_and_names_lower_case() -> None:
    (challenge,) = parse_challenges(
        ['DIGEST Realm="Login to 4K0A1B2C", NONCE="5e3b, 1", Stale=FALSE']
    )

    assert challenge.scheme == "digest"
    assert challenge.params == {
        "realm": "Login to 4K0A1B2C",
        "nonce": "5e3b, 1",  # a comma inside quotes is part of the value
        "stale": "FALSE",
    }


@pytest.mark.parametrize(
    "value",
    [
        'Digest realm="cam"',  # no nonce
        'Digest realm="cam", nonce="n", algorithm=MD5-sess',
        'Digest realm="cam", nonce="n", algorithm=SHA-512-256',
        'NTLM realm="cam"',
        "Bearer",
        'Digest realm="cam" nonce="n"',  # not a list: unusable rather than an error
    ],
)
def test_parse_challenges_unsupported_dropped(value: str) -> None:
    assert parse_challenges([value]) == []


def test_parse_challenges_empty_parameter_value_not_raised() -> None:
    # a camera sending an empty unquoted value must not crash the session
    (challenge,) = parse_challenges(['Digest realm="cam", nonce="n", opaque='])

    assert challenge.params["nonce"] == "n"
    assert challenge.params.get("opaque", "") == ""


def test_parse_challenges_basic_without_parameters_kept() -> None:
    assert parse_challenges(["Basic"]) == [Challenge("basic", {})]
