"""The evidence routes on the real app: export jobs, download, keys, verify, holds, audit."""

import asyncio
import io
import json
import shutil
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from nvr.api.app import ApiContext, make_app
from nvr.api.evidence import EVIDENCE
from nvr.auth.permissions import Role
from nvr.auth.tokens import create_token
from nvr.evidence.chain import GENESIS, audit_hash
from nvr.evidence.verify import verify_package
from nvr.timeutil import format_rfc3339

from .support import GAP_US, WALL_T0_US, Archive, S, index_call

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


async def _client(
    aiohttp_client: ClientFactory, archive: Archive
) -> TestClient[Any, Any]:
    app = make_app(ApiContext(archive.config, {}, archive.index, index_call))
    return await aiohttp_client(app)


def _auth(archive: Archive, name: str, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(archive.index, name, role)}"}


async def export_package(
    client: TestClient[Any, Any], headers: dict[str, str], start_us: int, end_us: int
) -> tuple[dict[str, Any], bytes]:
    """Runs one export through the API and returns its final state and the package."""
    answer = await client.post(
        "/api/v1/exports",
        headers=headers,
        json={
            "camera": "cam1",
            "start": format_rfc3339(start_us),
            "end": format_rfc3339(end_us),
            "case_id": "CASE-42",
            "reason": "incident at the door",
        },
    )
    assert answer.status == 202, await answer.text()
    export_id = (await answer.json())["id"]
    for _ in range(200):
        state = await (
            await client.get(f"/api/v1/exports/{export_id}", headers=headers)
        ).json()
        if state["state"] in ("done", "failed"):
            break
        await asyncio.sleep(0.05)
    assert state["state"] == "done", state
    download = await client.get(
        f"/api/v1/exports/{export_id}/download", headers=headers
    )
    assert download.status == 200
    return state, await download.read()


def _top_level_boxes(data: bytes) -> list[str]:
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        boxes.append(data[offset + 4 : offset + 8].decode("ascii"))
        offset += size
    return boxes


async def test_export_across_reconnect_lists_gap_verifies_and_plays(
    aiohttp_client: ClientFactory, archive: Archive, tmp_path: Path
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)
    start_us, end_us = WALL_T0_US + 2 * S, archive.end_us - 2 * S

    state, package = await export_package(client, operator, start_us, end_us)

    assert state["progress"] == 1.0 and state["exported_by"] == "olive"
    path = tmp_path / "package.zip"
    path.write_bytes(package)
    with zipfile.ZipFile(path) as archive_zip:
        assert sorted(archive_zip.namelist()) == [
            "manifest.json",
            "manifest.sig",
            "public_key.pem",
            "video.mp4",
        ]
        manifest = json.loads(archive_zip.read("manifest.json"))
        video = archive_zip.read("video.mp4")
    assert manifest["gaps"] == [
        {
            "start": format_rfc3339(archive.run_a_end_us),
            "end": format_rfc3339(archive.run_b_start_us),
            "start_us": archive.run_a_end_us,
            "end_us": archive.run_b_start_us,
            "reason": "disconnected",
        }
    ]
    assert [s["id"] for s in manifest["segments"]] == archive.segment_ids
    assert all(
        len(s["sha256"]) == 64 and len(s["chain_hash"]) == 64
        for s in manifest["segments"]
    )
    assert manifest["exported_by"] == "olive" and manifest["case_id"] == "CASE-42"
    assert manifest["requested"]["start_us"] == start_us
    assert manifest["actual"]["start_us"] <= start_us
    assert _top_level_boxes(video)[:2] == ["ftyp", "moov"]

    with av.open(io.BytesIO(video)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    covered_s = (end_us - start_us - GAP_US) / S
    assert frames >= covered_s * 25 - 25

    keys = await (await client.get("/api/v1/keys", headers=operator)).json()
    trusted = keys["keys"][0]["public_key_pem"].encode()
    report = verify_package(path, trusted)
    assert report.passed, report.checks
    assert report.key_source == "trusted"


async def test_export_places_hold_that_retention_honours(
    aiohttp_client: ClientFactory, archive: Archive
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)
    await export_package(client, operator, WALL_T0_US, WALL_T0_US + 5 * S)

    holds = await (
        await client.get("/api/v1/holds?case_id=CASE-42", headers=operator)
    ).json()
    old = archive.index.segments_older_than(archive.end_us + S, 100)

    assert len(holds["holds"]) == 1
    assert holds["holds"][0]["created_by"] == "olive"
    assert archive.segment_ids[0] not in [row.id for row in old]
    assert archive.segment_ids[1] not in [row.id for row in old]
    assert archive.segment_ids[2] in [row.id for row in old]
    assert archive.index.held(archive.segment_ids[0])
    assert (
        archive.index.delete_segment_row(archive.segment_ids[0], "retention", 1) is None
    )

    hold_id = holds["holds"][0]["id"]
    released = await client.delete(f"/api/v1/holds/{hold_id}", headers=operator)
    assert released.status == 200
    assert not archive.index.held(archive.segment_ids[0])


async def test_export_of_empty_range_fails_with_reason(
    aiohttp_client: ClientFactory, archive: Archive
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)
    answer = await client.post(
        "/api/v1/exports",
        headers=operator,
        json={
            "camera": "cam1",
            "start": format_rfc3339(WALL_T0_US - 100 * S),
            "end": format_rfc3339(WALL_T0_US - 50 * S),
            "case_id": "C",
            "reason": "r",
        },
    )
    export_id = (await answer.json())["id"]
    for _ in range(100):
        state = await (
            await client.get(f"/api/v1/exports/{export_id}", headers=operator)
        ).json()
        if state["state"] == "failed":
            break
        await asyncio.sleep(0.05)

    assert state["state"] == "failed"
    assert "no recording" in state["error"]
    download = await client.get(
        f"/api/v1/exports/{export_id}/download", headers=operator
    )
    assert download.status == 409


async def test_export_with_misspelt_field_refused_naming_it(
    aiohttp_client: ClientFactory, archive: Archive
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)
    body = {
        "camera": "cam1",
        "start": format_rfc3339(WALL_T0_US),
        "end": format_rfc3339(WALL_T0_US + 6 * S),
        "case_id": "C",
        "reason": "r",
        "case_note": "typo of a field that does not exist",
    }

    answer = await client.post("/api/v1/exports", headers=operator, json=body)

    assert answer.status == 400
    assert "'case_note': unknown field" in (await answer.json())["error"]["message"]


async def test_export_with_altered_source_fails_naming_segment(
    aiohttp_client: ClientFactory, archive: Archive
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)
    target = archive.path_of(archive.segment_ids[1])
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))

    answer = await client.post(
        "/api/v1/exports",
        headers=operator,
        json={
            "camera": "cam1",
            "start": format_rfc3339(WALL_T0_US),
            "end": format_rfc3339(WALL_T0_US + 10 * S),
            "case_id": "C",
            "reason": "r",
        },
    )
    export_id = (await answer.json())["id"]
    for _ in range(100):
        state = await (
            await client.get(f"/api/v1/exports/{export_id}", headers=operator)
        ).json()
        if state["state"] == "failed":
            break
        await asyncio.sleep(0.05)

    assert state["state"] == "failed"
    assert f"segment {archive.segment_ids[1]}" in state["error"]


@pytest.mark.parametrize("tamper", [False, True])
async def test_verify_upload_reports_each_check(
    aiohttp_client: ClientFactory, archive: Archive, tamper: bool
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)
    auditor = _auth(archive, "audrey", Role.AUDITOR)
    _, package = await export_package(client, operator, WALL_T0_US, WALL_T0_US + 6 * S)
    if tamper:
        package = flip_video_byte(package)

    form = FormData()
    form.add_field("package", package, filename="p.zip", content_type="application/zip")
    answer = await client.post("/api/v1/verify", headers=auditor, data=form)
    result = await answer.json()

    assert answer.status == 200
    assert result["passed"] is (not tamper)
    failed = [check["name"] for check in result["checks"] if not check["passed"]]
    assert failed == (["file video.mp4"] if tamper else [])


async def test_verify_upload_not_a_zip_fails_without_server_paths(
    aiohttp_client: ClientFactory, archive: Archive
) -> None:
    client = await _client(aiohttp_client, archive)
    auditor = _auth(archive, "audrey", Role.AUDITOR)

    answer = await client.post(
        "/api/v1/verify",
        headers={**auditor, "Content-Type": "application/zip"},
        data=b"this is not a zip archive",
    )
    result = await answer.json()

    assert answer.status == 200
    assert result["passed"] is False
    detail = result["checks"][0]["detail"]
    assert detail.startswith("cannot open the uploaded package as a zip archive")
    assert ".upload" not in detail and str(archive.root) not in detail


async def test_audit_log_records_actions_in_an_intact_chain(
    aiohttp_client: ClientFactory, archive: Archive
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)
    auditor = _auth(archive, "audrey", Role.AUDITOR)
    viewer = _auth(archive, "vic", Role.VIEWER)
    query = (
        f"start={format_rfc3339(WALL_T0_US)}&end={format_rfc3339(WALL_T0_US + 4 * S)}"
    )
    await client.get(f"/api/v1/cameras/cam1/video.mp4?{query}", headers=viewer)
    await export_package(client, operator, WALL_T0_US, WALL_T0_US + 4 * S)

    every = await (await client.get("/api/v1/audit", headers=auditor)).json()
    exports = await (
        await client.get("/api/v1/audit?action=export&actor=olive", headers=auditor)
    ).json()
    forbidden = await client.get("/api/v1/audit", headers=operator)

    actions = [entry["action"] for entry in every["entries"]]
    assert actions == ["playback", "hold-place", "export", "export-download"]
    assert [e["actor"] for e in every["entries"]] == ["vic", "olive", "olive", "olive"]
    assert len(exports["entries"]) == 1
    assert exports["entries"][0]["details"]["case_id"] == "CASE-42"
    assert forbidden.status == 403
    previous = GENESIS
    for entry in every["entries"]:
        assert entry["prev_hash"] == previous
        assert entry["hash"] == audit_hash(
            previous,
            entry["at_us"],
            entry["actor"],
            entry["action"],
            entry["camera"],
            entry["subject"],
            entry["details_json"],
        )
        previous = entry["hash"]


def flip_video_byte(package: bytes) -> bytes:
    """The package with one byte in the middle of video.mp4's data inverted."""
    with zipfile.ZipFile(io.BytesIO(package)) as archive_zip:
        info = archive_zip.getinfo("video.mp4")
    header = info.header_offset
    name_length = int.from_bytes(package[header + 26 : header + 28], "little")
    extra_length = int.from_bytes(package[header + 28 : header + 30], "little")
    middle = header + 30 + name_length + extra_length + info.compress_size // 2
    data = bytearray(package)
    data[middle] ^= 0xFF
    return bytes(data)


def _hold_body(**changes: str) -> dict[str, str]:
    body = {
        "camera": "cam1",
        "start": format_rfc3339(WALL_T0_US),
        "end": format_rfc3339(WALL_T0_US + 4 * S),
        "case_id": "CASE-7",
        "reason": "r",
    }
    return {**body, **changes}


@pytest.mark.parametrize(
    "case_id", ["CASE\r\nSet-Cookie: a=b", "CASE\x1b[2J", "CASE\u202e7"]
)
async def test_hold_case_id_with_control_character_refused_nothing_placed(
    aiohttp_client: ClientFactory, archive: Archive, case_id: str
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)

    answer = await client.post(
        "/api/v1/holds", headers=operator, json=_hold_body(case_id=case_id)
    )
    export = await client.post(
        "/api/v1/exports", headers=operator, json=_hold_body(case_id=case_id)
    )

    assert answer.status == 400 and export.status == 400
    message = (await answer.json())["error"]["message"]
    assert message.startswith("'case_id' holds a control character")
    holds = await client.get("/api/v1/holds", headers=operator)
    assert (await holds.json())["holds"] == []


async def test_hold_location_case_id_percent_encoded(
    aiohttp_client: ClientFactory, archive: Archive
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)

    answer = await client.post(
        "/api/v1/holds", headers=operator, json=_hold_body(case_id="A&camera=x #1 é")
    )
    listed = await client.get(answer.headers["Location"], headers=operator)

    assert answer.status == 201
    assert answer.headers["Location"] == (
        "/api/v1/holds?case_id=A%26camera%3Dx%20%231%20%C3%A9"
    )
    assert [h["case_id"] for h in (await listed.json())["holds"]] == ["A&camera=x #1 é"]


def _scoped(archive: Archive, name: str, role: Role, cameras: tuple[str, ...]) -> Any:
    token = create_token(archive.index, name, role, cameras=cameras)
    return {"Authorization": f"Bearer {token}"}


async def test_hold_release_by_token_scoped_to_other_camera_answers_404_hold_kept(
    aiohttp_client: ClientFactory, archive: Archive
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)
    elsewhere = _scoped(archive, "otto", Role.OPERATOR, ("cam2",))
    placed = await client.post(
        "/api/v1/holds", headers=operator, json=_hold_body(case_id="SEALED-1")
    )
    hold_id = (await placed.json())["id"]

    answer = await client.delete(f"/api/v1/holds/{hold_id}", headers=elsewhere)

    assert answer.status == 404
    text = await answer.text()
    assert "cam1" not in text and "SEALED-1" not in text
    assert archive.index.held(archive.segment_ids[0])


async def test_export_of_other_camera_answers_404_without_naming_camera(
    aiohttp_client: ClientFactory, archive: Archive
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)
    elsewhere = _scoped(archive, "otto", Role.OPERATOR, ("cam2",))
    created = await client.post(
        "/api/v1/exports", headers=operator, json=_hold_body(case_id="SEALED-1")
    )
    export_id = (await created.json())["id"]

    for path in (
        f"/api/v1/exports/{export_id}",
        f"/api/v1/exports/{export_id}/download",
    ):
        answer = await client.get(path, headers=elsewhere)
        assert answer.status == 404
        assert (await answer.json())["error"]["message"] == (
            f"unknown export {export_id!r}"
        )


async def test_audit_log_scoped_auditor_sees_only_its_cameras_and_general_rows(
    aiohttp_client: ClientFactory, archive: Archive
) -> None:
    client = await _client(aiohttp_client, archive)
    admin = _auth(archive, "ada", Role.ADMIN)
    await client.post("/api/v1/holds", headers=admin, json=_hold_body())
    await client.post(
        "/api/v1/groups", headers=admin, json={"name": "lobby", "retention_days": 7}
    )
    scoped = {
        cameras: _scoped(archive, f"audrey-{cameras[0]}", Role.AUDITOR, cameras)
        for cameras in (("cam1",), ("cam2",))
    }

    seen = {}
    for cameras, headers in scoped.items():
        answer = await client.get("/api/v1/audit", headers=headers)
        seen[cameras[0]] = [e["action"] for e in (await answer.json())["entries"]]

    assert seen == {"cam1": ["hold-place", "group-create"], "cam2": ["group-create"]}


@pytest.mark.parametrize("export_id", ["x\u0000y", "e" * 5000, {"a": 1}, 7])
async def test_verify_upload_odd_export_id_audited_as_unknown(
    aiohttp_client: ClientFactory, archive: Archive, export_id: object
) -> None:
    client = await _client(aiohttp_client, archive)
    auditor = _auth(archive, "audrey", Role.AUDITOR)
    manifest = {"format": "nvr-evidence/1", "files": [], "export_id": export_id}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("manifest.json", json.dumps(manifest))
        package.writestr("manifest.sig", "AAAA\n")
        package.writestr("public_key.pem", "not a key")

    answer = await client.post(
        "/api/v1/verify",
        headers={**auditor, "Content-Type": "application/zip"},
        data=buffer.getvalue(),
    )
    audit = await (await client.get("/api/v1/audit", headers=auditor)).json()

    assert answer.status == 200
    assert (await answer.json())["export_id"] is None
    assert audit["entries"][-1]["subject"] == "package unknown"


@pytest.mark.parametrize(
    ("header", "status", "part"),
    [
        ("bytes=3-7", 206, slice(3, 8)),
        ("bytes=-5", 206, slice(-5, None)),
        ("bytes=10-", 206, slice(10, None)),
        ("bytes=0-1,5-6", 200, slice(None)),
        ("bytes=abc", 200, slice(None)),
        ("bytes=5-2", 200, slice(None)),
        ("items=0-1", 200, slice(None)),
        ("bytes=-0", 416, None),
        ("bytes=999999999-", 416, None),
    ],
)
async def test_download_range_header_served_like_playback(
    aiohttp_client: ClientFactory,
    archive: Archive,
    header: str,
    status: int,
    part: slice | None,
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)
    state, package = await export_package(
        client, operator, WALL_T0_US, WALL_T0_US + 4 * S
    )

    answer = await client.get(
        f"/api/v1/exports/{state['id']}/download",
        headers={**operator, "Range": header},
    )

    assert answer.status == status
    if part is None:
        assert (await answer.json())["error"]["status"] == 416
        assert answer.headers["Content-Range"] == f"bytes */{len(package)}"
    else:
        assert await answer.read() == package[part]


async def test_export_write_failure_error_names_no_server_path(
    aiohttp_client: ClientFactory, archive: Archive, tmp_path: Path
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)
    exports_dir = client.app[EVIDENCE].exports_dir
    await asyncio.to_thread(shutil.rmtree, exports_dir)
    await asyncio.to_thread(exports_dir.write_bytes, b"")  # no directory to write in

    created = await client.post("/api/v1/exports", headers=operator, json=_hold_body())
    export_id = (await created.json())["id"]
    for _ in range(100):
        state = await (
            await client.get(f"/api/v1/exports/{export_id}", headers=operator)
        ).json()
        if state["state"] == "failed":
            break
        await asyncio.sleep(0.05)

    assert state["state"] == "failed"
    assert "Not a directory" in state["error"]
    assert str(tmp_path) not in state["error"]


@pytest.mark.parametrize("spelling", ["0_1", "+1", "%201", "%EF%BC%91", "01"])
async def test_hold_release_id_not_plain_digits_answers_404_hold_kept(
    aiohttp_client: ClientFactory, archive: Archive, spelling: str
) -> None:
    client = await _client(aiohttp_client, archive)
    operator = _auth(archive, "olive", Role.OPERATOR)
    placed = await client.post("/api/v1/holds", headers=operator, json=_hold_body())
    assert (await placed.json())["id"] == 1

    answer = await client.delete(f"/api/v1/holds/{spelling}", headers=operator)

    assert answer.status == 404
    assert archive.index.held(archive.segment_ids[0])
