"""The offline verifier on hostile packages: each answers a failed check, never a crash.

The packages are built here byte by byte (no server): odd zip features, entries placed
where a reader would trip, bombs, and manifests nvr never writes.
"""

import hashlib
import io
import json
import struct
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nvr.evidence.format import FORMAT, encode_signature
from nvr.evidence.signing import key_fingerprint, public_key_pem
from nvr.evidence.verify import VerifyReport, verify_package

KEY = Ed25519PrivateKey.generate()
PEM = public_key_pem(KEY.public_key())
PEM_SHA256 = hashlib.sha256(PEM).hexdigest()
CENTRAL_HEADER = b"PK\x01\x02"


def _manifest(**changes: object) -> bytes:
    listed = {"name": "public_key.pem", "bytes": len(PEM), "sha256": PEM_SHA256}
    manifest = {
        "format": FORMAT,
        "files": [listed],
        "signing_key": {
            "algorithm": "Ed25519",
            "sha256": key_fingerprint(KEY.public_key()),
        },
        **changes,
    }
    return json.dumps(manifest).encode()


def _zip(
    entries: list[tuple[str, bytes]],
    method: int = zipfile.ZIP_STORED,
    compressed: tuple[str, ...] = (),
) -> bytearray:
    """A zip of ``entries`` written with ``method``, those named in ``compressed``
    deflated whatever the method."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in entries:
            deflate = name in compressed
            archive.writestr(name, data, zipfile.ZIP_DEFLATED if deflate else None)
    return bytearray(buffer.getvalue())


def _package(
    manifest: bytes | None = None, method: int = zipfile.ZIP_STORED
) -> bytearray:
    manifest = _manifest() if manifest is None else manifest
    signature = encode_signature(KEY.sign(manifest))
    return _zip(
        [
            ("manifest.json", manifest),
            ("manifest.sig", signature),
            ("public_key.pem", PEM),
        ],
        method,
    )


def _first_central_header(
    data: bytearray, field_offset: int, value: bytes
) -> bytearray:
    """``data`` with ``value`` written at ``field_offset`` of the first central header."""
    at = data.find(CENTRAL_HEADER) + field_offset
    data[at : at + len(value)] = value
    return data


def _verify(tmp_path: Path, data: bytes | bytearray) -> VerifyReport:
    path = tmp_path / "package.zip"
    path.write_bytes(bytes(data))
    return verify_package(path, PEM)


def _failed(report: VerifyReport) -> dict[str, str]:
    return {check.name: check.detail for check in report.checks if not check.passed}


def test_verify_package_hostile_baseline_passes(tmp_path: Path) -> None:
    assert _verify(tmp_path, _package()).passed


@pytest.mark.parametrize("signing_key", ["abc", [1], 7, None])
def test_verify_package_signing_key_not_an_object_fails_key_check(
    tmp_path: Path, signing_key: object
) -> None:
    report = _verify(tmp_path, _package(_manifest(signing_key=signing_key)))

    assert "key" in _failed(report)


MANGLED: dict[str, Callable[[bytearray], bytearray]] = {
    # APPNOTE 4.3.12 central directory header: method at 10, flags at 8, offset at 42
    "unknown compression method": lambda d: _first_central_header(
        d, 10, struct.pack("<H", 99)
    ),
    "encrypted entry": lambda d: _first_central_header(d, 8, struct.pack("<H", 1)),
    "local header past the end": lambda d: _first_central_header(
        d, 42, struct.pack("<I", len(d) - 10)
    ),
    "local header far past the end": lambda d: _first_central_header(
        d, 42, struct.pack("<I", 0xFFFF_FFF0)
    ),
}


@pytest.mark.parametrize("mangle", sorted(MANGLED))
@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_verify_package_mangled_zip_fails_a_check(
    tmp_path: Path, mangle: str, method: int
) -> None:
    report = _verify(tmp_path, MANGLED[mangle](_package(method=method)))

    assert not report.passed
    assert report.checks[-1].passed is False


def test_verify_package_name_invalid_utf8_fails_package_check(tmp_path: Path) -> None:
    data = _zip([("manifest.json", _manifest()), ("abc", b"x")])
    last = data.rfind(CENTRAL_HEADER)
    data[last + 8 : last + 10] = struct.pack("<H", 0x800)  # flag: the name is UTF-8
    name = data.find(b"abc", last)
    data[name : name + 3] = b"\xff\xfe\xfd"

    report = _verify(tmp_path, data)

    assert list(_failed(report)) == ["package"]


@pytest.mark.parametrize("entry", ["manifest.json", "manifest.sig", "public_key.pem"])
def test_verify_package_fixed_entry_compressed_bomb_refused_unread(
    tmp_path: Path, entry: str
) -> None:
    bomb = b" " * 200_000_000  # deflates to about 200 kB
    entries = {
        "manifest.json": _manifest(),
        "manifest.sig": encode_signature(KEY.sign(_manifest())),
        "public_key.pem": PEM,
        entry: bomb,
    }

    started_s = time.monotonic()
    report = _verify(tmp_path, _zip(list(entries.items()), compressed=(entry,)))

    assert time.monotonic() - started_s < 5
    assert any(
        entry in detail and "compressed" in detail
        for detail in _failed(report).values()
    )


def test_verify_package_oversized_stored_manifest_refused_unread(
    tmp_path: Path,
) -> None:
    padded = _manifest(padding="x" * (65 * 1024 * 1024))

    report = _verify(tmp_path, _package(padded))

    assert "'manifest.json' is larger than" in _failed(report)["package"]


def test_verify_package_manifest_integer_beyond_parser_limit_fails(
    tmp_path: Path,
) -> None:
    huge = _manifest()[:-1] + b', "created_us": ' + b"9" * 5000 + b"}"

    report = _verify(tmp_path, _package(huge))

    assert "manifest" in _failed(report)


def test_verify_package_manifest_with_duplicate_key_fails(tmp_path: Path) -> None:
    doubled = (
        _manifest()[:-1] + b', "files": [{"name": "x", "sha256": "0", "bytes": 1}]}'
    )

    report = _verify(tmp_path, _package(doubled))

    assert "duplicate key 'files'" in _failed(report)["manifest"]


def test_verify_package_many_entries_checked_quickly(tmp_path: Path) -> None:
    entries = [(f"extra-{n}", b"") for n in range(50_000)]
    data = _zip([*entries, ("manifest.json", _manifest())])

    started_s = time.monotonic()
    report = _verify(tmp_path, data)

    assert time.monotonic() - started_s < 10
    assert "entries" in _failed(report)["package"]
