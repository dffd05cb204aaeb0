"""``nvr verify`` and ``nvr audit`` through the real command line (click's CliRunner)."""

import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete

from nvr.auth.permissions import Role
from nvr.auth.tokens import create_token
from nvr.cli import main
from nvr.evidence.format import MANIFEST_ENTRY, VIDEO_ENTRY
from nvr.evidence.signing import load_or_create_key, public_key_pem
from nvr.export.manifest import PackedFile
from nvr.export.package import write_package
from nvr.index.models import Segment

from .support import WALL_T0_US, Archive, S
from .test_api import ClientFactory, _client, export_package, flip_video_byte

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def package(
    aiohttp_client: ClientFactory, archive: Archive, tmp_path: Path
) -> tuple[Path, Path]:
    """An exported package and the server's public key, both as files."""
    client = await _client(aiohttp_client, archive)
    headers = {
        "Authorization": f"Bearer {create_token(archive.index, 'olive', Role.OPERATOR)}"
    }
    _, data = await export_package(client, headers, WALL_T0_US, WALL_T0_US + 6 * S)
    keys = await (await client.get("/api/v1/keys", headers=headers)).json()
    key_path = tmp_path / "server.pem"
    key_path.write_text(keys["keys"][0]["public_key_pem"])
    path = tmp_path / "package.zip"
    path.write_bytes(data)
    return path, key_path


def verify(*args: str) -> Any:
    return CliRunner().invoke(main, ["verify", *args])


def rewrite(source: Path, target: Path, changes: dict[str, bytes]) -> Path:
    """A copy of the zip with some entries' contents replaced."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, changes.get(info.filename, old.read(info.filename)))
    return target


def test_verify_intact_package_with_trusted_key_passes(
    package: tuple[Path, Path],
) -> None:
    path, key = package
    result = verify(str(path), "--key", str(key))

    assert result.exit_code == 0, result.output
    assert "PASS  signature" in result.output
    assert "PASS  file video.mp4" in result.output
    assert "result: PASS (key: trusted)" in result.output


def test_verify_flipped_video_byte_fails_naming_the_file(
    package: tuple[Path, Path], tmp_path: Path
) -> None:
    path, key = package
    tampered = tmp_path / "tampered.zip"
    tampered.write_bytes(flip_video_byte(path.read_bytes()))

    result = verify(str(tampered), "--key", str(key))

    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL  file video.mp4")
    assert "sha256" in failed[0]
    assert "PASS  signature" in result.output


def test_verify_edited_manifest_fails_the_signature_check(
    package: tuple[Path, Path], tmp_path: Path
) -> None:
    path, key = package
    with zipfile.ZipFile(path) as archive_zip:
        manifest = json.loads(archive_zip.read(MANIFEST_ENTRY))
    manifest["reason"] = "nothing to see"
    edited = rewrite(
        path, tmp_path / "edited.zip", {MANIFEST_ENTRY: json.dumps(manifest).encode()}
    )

    result = verify(str(edited), "--key", str(key))

    assert result.exit_code == 1
    assert "FAIL  signature" in result.output
    assert "PASS  file video.mp4" in result.output


def _resign(path: Path, target: Path, key: Ed25519PrivateKey) -> Path:
    """The same video and manifest facts, packaged and signed with another key."""
    with zipfile.ZipFile(path) as archive_zip:
        manifest = json.loads(archive_zip.read(MANIFEST_ENTRY))
        video = archive_zip.read(VIDEO_ENTRY)

    def build(files: list[PackedFile]) -> dict[str, Any]:
        return {
            **manifest,
            "files": [
                {
                    "name": f.name,
                    "bytes": f.size,
                    "sha256": f.sha256,
                    "media_type": f.media_type,
                }
                for f in files
            ],
            "signing_key": {"algorithm": "Ed25519", "sha256": _fingerprint(key)},
        }

    write_package(target, len(video), [video], build, key, manifest["created_us"])
    return target


def _fingerprint(key: Ed25519PrivateKey) -> str:
    from nvr.evidence.signing import key_fingerprint

    return key_fingerprint(key.public_key())


def test_verify_package_signed_by_another_key_fails_unless_that_key_is_trusted(
    package: tuple[Path, Path], tmp_path: Path
) -> None:
    path, server_key = package
    other = Ed25519PrivateKey.generate()
    forged = _resign(path, tmp_path / "forged.zip", other)
    other_pem = tmp_path / "other.pem"
    other_pem.write_bytes(public_key_pem(other.public_key()))

    against_server = verify(str(forged), "--key", str(server_key))
    against_other = verify(str(forged), "--key", str(other_pem))
    bundled = verify(str(forged))

    assert against_server.exit_code == 1
    assert "FAIL  key" in against_server.output
    assert "FAIL  signature" in against_server.output
    assert against_other.exit_code == 0, against_other.output
    assert "result: PASS (key: bundled)" in bundled.output
    assert "no trusted key given" in bundled.output


def test_verify_runs_offline_without_index_or_server_modules(
    package: tuple[Path, Path],
) -> None:
    path, key = package
    code = (
        "import sys\n"
        "from nvr.evidence.commands import verify_command\n"
        "try:\n"
        f"    verify_command([{str(path)!r}, '--key', {str(key)!r}])\n"
        "except SystemExit as exit:\n"
        "    loaded = [m for m in sys.modules if m.startswith(('nvr.index', 'aiohttp',\n"
        "              'sqlalchemy', 'nvr.api', 'nvr.server'))]\n"
        "    print('loaded:', loaded, 'exit:', exit.code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert "loaded: [] exit: 0" in out


def test_verify_entry_name_with_terminal_escapes_printed_escaped(
    package: tuple[Path, Path], tmp_path: Path
) -> None:
    path, key = package
    forged_name = "\x1b[1A\x1b[2K\rPASS  file video.mp4\u202e"
    extra = tmp_path / "extra.zip"
    extra.write_bytes(path.read_bytes())
    with zipfile.ZipFile(extra, "a") as archive_zip:
        archive_zip.writestr(forged_name, b"x")

    result = verify(str(extra), "--key", str(key))

    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\r" not in result.output
    assert "\u202e" not in result.output
    assert "FAIL  file \\x1b[1A\\x1b[2K\\rPASS  file video.mp4\\u202e" in result.output


def test_signing_key_created_owner_only_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "evidence" / "signing_key.pem"
    first = load_or_create_key(path)
    second = load_or_create_key(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_pem(first.public_key()) == public_key_pem(second.public_key())


# nvr audit


def _config_file(archive: Archive, tmp_path: Path) -> Path:
    path = tmp_path / "nvr.toml"
    path.write_text(
        f'[storage]\nroot = "{archive.config.storage.root}"\n'
        f'[index]\nurl = "{archive.config.index.url}"\n'
        '[[cameras]]\nid = "cam1"\nurl = "rtsp://127.0.0.1:1/a"\n'
    )
    return path


def audit(archive: Archive, tmp_path: Path, *extra: str, camera: str = "cam1") -> Any:
    return CliRunner().invoke(
        main,
        [
            "audit",
            "--config",
            str(_config_file(archive, tmp_path)),
            "--camera",
            camera,
            *extra,
        ],
    )


def test_audit_untouched_archive_is_clean(archive: Archive, tmp_path: Path) -> None:
    result = audit(archive, tmp_path)

    assert result.exit_code == 0, result.output
    assert "5 chain records, 5 files re-hashed" in result.output
    assert "result: CLEAN" in result.output


def test_audit_unknown_camera_is_an_error_not_clean(
    archive: Archive, tmp_path: Path
) -> None:
    result = audit(archive, tmp_path, camera="cam-typo")

    assert result.exit_code == 2, result.output
    assert "camera 'cam-typo' is not in the index" in result.output
    assert "CLEAN" not in result.output


def test_audit_altered_middle_segment_is_reported_by_segment(
    archive: Archive, tmp_path: Path
) -> None:
    middle = archive.segment_ids[2]
    target = archive.path_of(middle)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))

    result = audit(archive, tmp_path)

    assert result.exit_code == 1
    findings = [
        line for line in result.output.splitlines() if line.startswith("ALTERED")
    ]
    assert len(findings) == 1 and f"segment {middle} " in findings[0]


def test_audit_deleted_middle_file_is_reported_missing(
    archive: Archive, tmp_path: Path
) -> None:
    middle = archive.segment_ids[1]
    archive.path_of(middle).unlink()

    result = audit(archive, tmp_path)

    assert result.exit_code == 1
    assert f"MISSING  segment {middle} " in result.output


def test_audit_row_removed_silently_breaks_the_chain(
    archive: Archive, tmp_path: Path
) -> None:
    removed = archive.segment_ids[2]
    path = archive.path_of(removed)
    with archive.index.write() as session:
        session.execute(delete(Segment).where(Segment.id == removed))
    path.unlink()

    result = audit(archive, tmp_path)

    assert result.exit_code == 1
    assert f"CHAIN-BREAK  segment {archive.segment_ids[3]} " in result.output


def test_audit_retention_deletion_is_explained_not_tampering(
    archive: Archive, tmp_path: Path
) -> None:
    removed = archive.segment_ids[1]
    path = archive.path_of(removed)
    assert (
        archive.index.delete_segment_row(removed, "retention", WALL_T0_US) is not None
    )
    path.unlink()

    result = audit(archive, tmp_path, "--start", "2026-01-01T00:00:00Z")

    assert result.exit_code == 0, result.output
    assert "1 deleted by logged deletions (explained)" in result.output


def test_audit_edited_audit_row_is_reported(archive: Archive, tmp_path: Path) -> None:
    from sqlalchemy import update

    from nvr.index.evidence import record_audit
    from nvr.index.models import AuditEntry

    first = record_audit(archive.index, "olive", "export", "export x")
    record_audit(archive.index, "olive", "export", "export y")
    with archive.index.write() as session:
        session.execute(
            update(AuditEntry).where(AuditEntry.id == first.id).values(actor="mallory")
        )

    result = audit(archive, tmp_path)

    assert result.exit_code == 1
    assert f"AUDIT-LOG  audit row {first.id}: hash" in result.output


def test_zip_names_are_stored_uncompressed(package: tuple[Path, Path]) -> None:
    path, _ = package
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive_zip:
        assert {i.compress_type for i in archive_zip.infolist()} == {zipfile.ZIP_STORED}


def test_audit_without_config_reads_the_embedded_default_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(main, ["audit", "--camera", "nosuch"])

    assert result.exit_code == 2, result.output
    assert "nosuch" in result.output
    assert (tmp_path / "var" / "index.db").exists()
