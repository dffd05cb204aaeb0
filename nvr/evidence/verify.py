"""Checking an evidence package offline: signature, key, and every file's hash.

Needs only the package (and optionally a trusted public key): no server, no database.
Each check is reported on its own so a failure names exactly what is wrong.
"""

import hashlib
import json
import struct
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from nvr.evidence.format import (
    FORMAT,
    MANIFEST_ENTRY,
    PUBLIC_KEY_ENTRY,
    SIGNATURE_ENTRY,
    UNLISTED_ENTRIES,
    decode_signature,
)
from nvr.evidence.signing import key_fingerprint, load_public_key, signature_valid

HASH_CHUNK_BYTES = 1024 * 1024
LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, (skipped), name and extra lengths
LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
ENCRYPTED_FLAG = 0x1  # APPNOTE 4.4.4, general purpose bit 0
# nvr writes 4 entries; a package with many more is no nvr package (and listing each
# as "not listed" would make a huge report).
MAX_ENTRIES = 64
# The fixed entries are read whole into memory, so each has a bound: a day of 4 s
# segments makes a manifest of about 12 MB.
MAX_FIXED_BYTES = {
    MANIFEST_ENTRY: 64 * 1024 * 1024,
    SIGNATURE_ENTRY: 1024,
    PUBLIC_KEY_ENTRY: 16 * 1024,
}

# Called with (bytes hashed so far, bytes to hash in all).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Check:
    name: str  # "package", "manifest", "key", "signature" or "file <name>"
    passed: bool
    detail: str


@dataclass
class VerifyReport:
    checks: list[Check] = field(default_factory=list)
    key_source: str | None = None  # "trusted" (given by the caller) or "bundled"
    manifest: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    def add(self, name: str, passed: bool, detail: str) -> bool:
        self.checks.append(Check(name, passed, detail))
        return passed


def verify_package(
    path: Path,
    trusted_key_pem: bytes | None = None,
    progress: Progress | None = None,
    label: str | None = None,
) -> VerifyReport:
    """Runs every check on the package at ``path``. Blocking: hashes every file.

    ``label`` names the package in the report (default: the file name); the server
    passes one so that its temporary upload paths stay out of the answer.

    With ``trusted_key_pem`` the signature is checked against that key and the bundled
    key must equal it; without it the bundled key is used, which proves the package is
    intact but not who made it (the report says which key was used).
    """
    report = VerifyReport()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        # UnicodeDecodeError: an entry name flagged UTF-8 that is not
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        shown = label or path.name
        report.add("package", False, f"cannot open {shown} as a zip archive: {reason}")
        return report
    with archive:
        if not _check_entries(archive, report):
            return report
        entries = _Entries(path, archive)
        try:
            manifest_bytes = entries.read(MANIFEST_ENTRY)
        except zipfile.BadZipFile as exc:
            report.add("manifest", False, f"{MANIFEST_ENTRY} is unreadable: {exc}")
            return report
        manifest = _check_manifest(manifest_bytes, report)
        if manifest is None:
            return report
        report.manifest = manifest
        key = _check_key(entries, manifest, trusted_key_pem, report)
        if key is not None:
            _check_signature(entries, manifest_bytes, key, report)
        _check_files(entries, manifest, report, progress)
    return report


class _Entries:
    """Reads entries as stored, so a changed byte reaches the hash and signature checks
    (which name it) instead of stopping at zipfile's CRC-32 check."""

    def __init__(self, path: Path, archive: zipfile.ZipFile) -> None:
        self.path = path
        self.archive = archive

    def names(self) -> list[str]:
        return self.archive.namelist()

    def size(self, name: str) -> int:
        return self.archive.getinfo(name).file_size

    def compressed(self, name: str) -> bool:
        return self.archive.getinfo(name).compress_type != zipfile.ZIP_STORED

    def read(self, name: str) -> bytes:
        return b"".join(self.chunks(name))

    def chunks(self, name: str) -> Iterator[bytes]:
        """The stored entry's bytes; raises zipfile.BadZipFile when they cannot be
        located. Compressed entries are never inflated (nvr writes none; a bomb could
        hide in one): callers check ``compressed`` first."""
        info = self.archive.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED:
            raise zipfile.BadZipFile(f"{name!r} is compressed")
        with open(self.path, "rb") as f:
            # The data follows the local file header (APPNOTE.TXT 4.3.7): 30 fixed bytes,
            # then the name and extra field, whose lengths the header gives.
            f.seek(info.header_offset)
            header = f.read(LOCAL_HEADER.size)
            if len(header) < LOCAL_HEADER.size:
                raise zipfile.BadZipFile(f"no local header for {name!r}")
            signature, name_length, extra_length = LOCAL_HEADER.unpack(header)
            if signature != LOCAL_HEADER_SIGNATURE:
                raise zipfile.BadZipFile(f"no local header for {name!r}")
            f.seek(info.header_offset + LOCAL_HEADER.size + name_length + extra_length)
            remaining = info.compress_size
            while remaining:
                chunk = f.read(min(remaining, HASH_CHUNK_BYTES))
                if not chunk:
                    raise zipfile.BadZipFile(f"{name!r} is cut short")
                remaining -= len(chunk)
                yield chunk


def _check_entries(archive: zipfile.ZipFile, report: VerifyReport) -> bool:
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        return report.add(
            "package", False, f"{len(infos)} entries; an {FORMAT} package has 4"
        )
    counts = Counter(info.filename for info in infos)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        # A zip may hold one name twice; readers disagree on which copy they show.
        return report.add("package", False, f"entry {duplicates[0]!r} appears twice")
    encrypted = [info.filename for info in infos if info.flag_bits & ENCRYPTED_FLAG]
    if encrypted:
        # Stored bytes of an encrypted entry are ciphertext: other readers would show
        # (after a password) something else than what was hashed here.
        return report.add("package", False, f"entry {encrypted[0]!r} is encrypted")
    missing = [name for name in MAX_FIXED_BYTES if name not in counts]
    if missing:
        return report.add("package", False, f"missing entry {missing[0]!r}")
    for name, limit in MAX_FIXED_BYTES.items():
        info = archive.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED:
            return report.add(
                "package",
                False,
                f"entry {name!r} is compressed (method {info.compress_type}); "
                "nvr packages store every entry",
            )
        if max(info.file_size, info.compress_size) > limit:
            return report.add(
                "package", False, f"entry {name!r} is larger than {limit} bytes"
            )
    # Limitation: entries are located through the central directory only, so bytes
    # outside every listed entry (a second local "video.mp4" that a streaming reader
    # would show) go unnoticed; the fix is checking that the local records tile the
    # file from offset 0 up to the central directory.
    return report.add(
        "package", True, f"{len(infos)} entries, required entries present"
    )


def _check_manifest(data: bytes, report: VerifyReport) -> dict[str, Any] | None:
    try:
        manifest = json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        # ValueError: JSON syntax, a repeated key, an integer of over 4300 digits
        report.add("manifest", False, f"{MANIFEST_ENTRY} is not UTF-8 JSON: {exc}")
        return None
    except RecursionError:
        report.add(
            "manifest", False, f"{MANIFEST_ENTRY} is nested too deeply to be ours"
        )
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        report.add("manifest", False, f"{MANIFEST_ENTRY} is not an {FORMAT} manifest")
        return None
    files = manifest.get("files")
    if not isinstance(files, list) or not all(_file_entry_ok(entry) for entry in files):
        report.add("manifest", False, f"{MANIFEST_ENTRY} has no valid 'files' list")
        return None
    report.add("manifest", True, f"{FORMAT}, {len(files)} files listed")
    return manifest


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a repeated key: readers disagree on which value counts,
    and a canonical manifest never has one."""
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise ValueError(f"duplicate key {key!r}")
        value[key] = item
    return value


def _file_entry_ok(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("sha256"), str)
        and isinstance(entry.get("bytes"), int)
    )


def _check_key(
    entries: _Entries,
    manifest: dict[str, Any],
    trusted_key_pem: bytes | None,
    report: VerifyReport,
) -> Ed25519PublicKey | None:
    """The key to check the signature with, after checking it is the one to use."""
    try:
        bundled = load_public_key(entries.read(PUBLIC_KEY_ENTRY))
    except (ValueError, zipfile.BadZipFile) as exc:
        report.add(
            "key", False, f"{PUBLIC_KEY_ENTRY} is not an Ed25519 public key: {exc}"
        )
        bundled = None
    signing_key = manifest.get("signing_key")
    declared = signing_key.get("sha256") if isinstance(signing_key, dict) else None

    if trusted_key_pem is None:
        if bundled is None:
            return None
        report.key_source = "bundled"
        fingerprint = key_fingerprint(bundled)
        report.add(
            "key",
            declared == fingerprint,
            f"bundled key {fingerprint} used (no trusted key given: this shows the "
            "package is intact, not who made it)"
            + ("" if declared == fingerprint else f"; manifest names key {declared}"),
        )
        return bundled

    try:
        trusted = load_public_key(trusted_key_pem)
    except ValueError as exc:
        report.add(
            "key", False, f"the trusted key given is not an Ed25519 public key: {exc}"
        )
        return None
    report.key_source = "trusted"
    fingerprint = key_fingerprint(trusted)
    if bundled is not None and key_fingerprint(bundled) != fingerprint:
        report.add(
            "key",
            False,
            f"bundled key {key_fingerprint(bundled)} is not the trusted "
            f"key {fingerprint}",
        )
    elif declared != fingerprint:
        report.add(
            "key",
            False,
            f"manifest names key {declared}, not the trusted key {fingerprint}",
        )
    else:
        report.add(
            "key", True, f"trusted key {fingerprint} given; bundled key matches it"
        )
    return trusted


def _check_signature(
    entries: _Entries,
    manifest_bytes: bytes,
    key: Ed25519PublicKey,
    report: VerifyReport,
) -> None:
    fingerprint = key_fingerprint(key)
    try:
        signature = decode_signature(entries.read(SIGNATURE_ENTRY))
    except (ValueError, zipfile.BadZipFile) as exc:
        report.add("signature", False, f"{SIGNATURE_ENTRY} is malformed: {exc}")
        return
    if signature_valid(key, signature, manifest_bytes):
        report.add(
            "signature",
            True,
            f"{SIGNATURE_ENTRY} is a valid Ed25519 signature of "
            f"{MANIFEST_ENTRY} by key {fingerprint}",
        )
    else:
        report.add(
            "signature",
            False,
            f"{SIGNATURE_ENTRY} does not verify {MANIFEST_ENTRY} "
            f"under key {fingerprint}: the manifest was altered or signed by another "
            "key",
        )


def _check_files(
    entries: _Entries,
    manifest: dict[str, Any],
    report: VerifyReport,
    progress: Progress | None,
) -> None:
    names = set(entries.names())
    listed = manifest["files"]
    total = sum(entries.size(e["name"]) for e in listed if e["name"] in names)
    done = 0
    for entry in listed:
        name = entry["name"]
        if name not in names:
            report.add(
                f"file {name}", False, "listed in the manifest but not in the package"
            )
            continue
        declared = entries.size(name)
        if declared != entry["bytes"]:
            # checked before reading, so a zip bomb is refused without inflating it
            report.add(
                f"file {name}",
                False,
                f"zip entry holds {declared} bytes, manifest says {entry['bytes']}",
            )
            continue
        if entries.compressed(name):
            report.add(f"file {name}", False, "compressed; nvr packages store entries")
            continue
        digest, size, done = _hash_entry(entries, name, done, total, progress)
        if digest is None:
            report.add(f"file {name}", False, "unreadable: the zip entry is damaged")
        elif size != entry["bytes"]:
            report.add(
                f"file {name}", False, f"{size} bytes, manifest says {entry['bytes']}"
            )
        elif digest != entry["sha256"]:
            report.add(
                f"file {name}",
                False,
                f"sha256 {digest}, manifest says {entry['sha256']}",
            )
        else:
            report.add(f"file {name}", True, f"{size} bytes, sha256 {digest}")
    for name in sorted(names - {entry["name"] for entry in listed} - UNLISTED_ENTRIES):
        report.add(
            f"file {name}", False, "in the package but not listed in the manifest"
        )


def _hash_entry(
    entries: _Entries, name: str, done: int, total: int, progress: Progress | None
) -> tuple[str | None, int, int]:
    """SHA-256 (None if the entry cannot be read) and size of one entry, streamed; also
    the running progress count."""
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in entries.chunks(name):
            digest.update(chunk)
            size += len(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    except zipfile.BadZipFile:
        return None, size, done
    return digest.hexdigest(), size, done
