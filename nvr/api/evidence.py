"""The evidence routes: export jobs, signing keys, package verification, holds, audit log.

Registered by ``make_app`` through ``register_evidence``. The signing key is loaded (or
created) at application start-up; export jobs run in the background (nvr.export.jobs).
"""

import asyncio
import json
import logging
import os
import re
import tempfile
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nvr.api.actor import request_actor
from nvr.api.body import json_object
from nvr.api.ranges import byte_range, send_span
from nvr.api.timerange import MAX_RANGE_US, parse_time_range
from nvr.auth.middleware import camera_visible, visible_cameras
from nvr.errors import NotFound, RequestError
from nvr.evidence.chain import AuditRecord
from nvr.evidence.signing import key_fingerprint, load_or_create_key, public_key_pem
from nvr.evidence.verify import verify_package
from nvr.export.jobs import ExportJobs
from nvr.index import evidence as evidence_db
from nvr.index.evidence import ExportRow, HoldRow
from nvr.log import fields
from nvr.timeutil import format_rfc3339, parse_rfc3339_us

if TYPE_CHECKING:
    from nvr.api.app import ApiContext

log = logging.getLogger(__name__)

# A legal hold covers whatever a case needs (weeks of footage), unlike a playback range.
MAX_HOLD_US = 3660 * 86_400 * 1_000_000

PLAYBACK_ROUTE = "/api/v1/cameras/{camera_id}/video.mp4"
UPLOAD_CHUNK_BYTES = 1024 * 1024
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
MAX_UPLOAD_BYTES = 64 * 1024**3
MAX_TEXT = 1024
MAX_CASE_ID = 128
HOLD_ID = re.compile(r"[1-9][0-9]*", re.ASCII)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Conflict(RequestError):
    """The resource is not in a state that allows the request (an export not done)."""

    status = 409


class TooLarge(RequestError):
    status = 413


@dataclass
class Evidence:
    """Per-application evidence state; the key and jobs exist once the app has started."""

    context: "ApiContext"
    key_path: Path
    exports_dir: Path
    key: Ed25519PrivateKey | None = None
    jobs: ExportJobs | None = None
    camera_groups: dict[str, str] = field(default_factory=dict)

    def started(self) -> tuple[Ed25519PrivateKey, ExportJobs]:
        if self.key is None or self.jobs is None:
            raise RuntimeError("evidence routes used before application start-up")
        return self.key, self.jobs


EVIDENCE = web.AppKey("evidence", Evidence)


def default_paths(storage_root: Path) -> tuple[Path, Path]:
    """Signing key and exports directory beside the storage root (not inside it)."""
    var = Path(storage_root).parent
    return var / "evidence" / "signing_key.pem", var / "exports"


def register_evidence(
    app: web.Application,
    context: "ApiContext",
    key_path: Path | None = None,
    exports_dir: Path | None = None,
) -> None:
    """Adds the evidence routes, start-up and clean-up hooks and the playback audit."""
    default_key, default_exports = default_paths(Path(context.config.storage.root))
    app[EVIDENCE] = Evidence(
        context,
        key_path or default_key,
        exports_dir or default_exports,
        camera_groups=context.camera_groups,
    )
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    app.middlewares.append(_playback_audit)
    app.router.add_post("/api/v1/exports", create_export)
    app.router.add_get("/api/v1/exports/{export_id}", get_export)
    app.router.add_get("/api/v1/exports/{export_id}/download", download_export)
    app.router.add_get("/api/v1/keys", list_keys)
    app.router.add_post("/api/v1/verify", verify)
    app.router.add_post("/api/v1/holds", create_hold)
    app.router.add_get("/api/v1/holds", list_holds)
    app.router.add_delete("/api/v1/holds/{hold_id}", release_hold)
    app.router.add_get("/api/v1/audit", audit_log)


async def _startup(app: web.Application) -> None:
    evidence = app[EVIDENCE]
    context = evidence.context
    evidence.key = await asyncio.to_thread(load_or_create_key, evidence.key_path)
    evidence.jobs = ExportJobs(
        index=context.index,
        index_call=context.index_call,
        storage_root=Path(context.config.storage.root),
        exports_dir=evidence.exports_dir,
        key=evidence.key,
        camera_groups=evidence.camera_groups,
        locate=None if context.replication is None else context.replication.locations,
    )
    await evidence.jobs.start()
    log.info(
        "evidence ready %s", fields(key=key_fingerprint(evidence.key.public_key()))
    )


async def _cleanup(app: web.Application) -> None:
    jobs = app[EVIDENCE].jobs
    if jobs is not None:
        await jobs.close()


def _json(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        data, status=status, headers=headers, dumps=lambda v: json.dumps(v, indent=1)
    )


async def _audit(
    request: web.Request,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
    camera_id: str | None = None,
) -> None:
    context = request.app[EVIDENCE].context
    await context.index_call(
        evidence_db.record_audit,
        context.index,
        request_actor(request),
        action,
        subject,
        details,
        camera_id,
    )


@web.middleware
async def _playback_audit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Writes an audit row for each playback request before it is served.

    A player fetches one clip in many Range requests; only the first (no Range, or one
    starting at byte 0) is recorded, so one viewing is one row.
    """
    resource = request.match_info.route.resource
    if (
        request.method == "GET"
        and resource is not None
        and resource.canonical == PLAYBACK_ROUTE
        and _first_range(request)
    ):
        camera_id = request.match_info["camera_id"]
        await _audit(
            request,
            "playback",
            f"camera {camera_id}",
            {"start": request.query.get("start"), "end": request.query.get("end")},
            camera_id,
        )
    return await handler(request)


def _first_range(request: web.Request) -> bool:
    if "Range" not in request.headers:
        return True
    try:
        return request.http_range.start in (None, 0)
    except ValueError:
        return True


# request bodies


RANGE_FIELDS = ("camera", "start", "end", "case_id", "reason")


# Free text may break lines; an identifier (which also ends up in URLs and headers)
# holds no control or invisible formatting character (CR, LF, ESC, bidi overrides).
LINE_BREAKS = frozenset("\t\n\r")


def _control_character(value: str, identifier: bool) -> str | None:
    refused = ("Cc", "Cf") if identifier else ("Cc",)
    allowed = frozenset() if identifier else LINE_BREAKS
    for char in value:
        if char not in allowed and unicodedata.category(char) in refused:
            return char
    return None


def _text(
    body: Mapping[str, Any],
    name: str,
    limit: int = MAX_TEXT,
    *,
    identifier: bool = False,
) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"{name!r} is required (a non-empty string)")
    if len(value) > limit:
        raise RequestError(f"{name!r} is longer than {limit} characters")
    char = _control_character(value, identifier)
    if char is not None:
        raise RequestError(f"{name!r} holds a control character (U+{ord(char):04X})")
    return value.strip()


def _holds_location(case_id: str) -> str:
    return f"/api/v1/holds?case_id={quote(case_id, safe='')}"


def _in_scope(request: web.Request, camera_id: str) -> bool:
    """Whether the request's token may see the camera (configured still or not)."""
    groups = request.app[EVIDENCE].camera_groups
    return camera_visible(request, camera_id, groups.get(camera_id))


def _camera(request: web.Request, camera_id: str) -> str:
    """The camera id if the config has it and the token may see it, else NotFound."""
    if camera_id not in request.app[EVIDENCE].camera_groups or not _in_scope(
        request, camera_id
    ):
        raise NotFound(f"unknown camera {camera_id!r}")
    return camera_id


def _range_request(
    request: web.Request, body: Mapping[str, Any], max_us: int = MAX_RANGE_US
) -> tuple[str, int, int, str, str]:
    camera_id = _camera(request, _text(body, "camera"))
    bounds = {"start": _text(body, "start"), "end": _text(body, "end")}
    span = parse_time_range(bounds, max_us)
    return (
        camera_id,
        span.start_us,
        span.end_us,
        _text(body, "case_id", MAX_CASE_ID, identifier=True),
        _text(body, "reason"),
    )


# exports


def _export_json(row: ExportRow, evidence: Evidence) -> dict[str, Any]:
    live = evidence.jobs.progress(row.id) if evidence.jobs is not None else None
    if row.state == "done":
        progress: float | None = 1.0
    elif live is not None and live.total:
        progress = round(live.done / live.total, 4)
    else:
        progress = 0.0 if row.state in ("queued", "running") else None
    return {
        "id": row.id,
        "camera": row.camera_id,
        "start": format_rfc3339(row.start_us),
        "end": format_rfc3339(row.end_us),
        "case_id": row.case_id,
        "reason": row.reason,
        "exported_by": row.actor,
        "state": row.state,
        "phase": live.phase if live is not None else None,
        "progress": progress,
        "error": row.error,
        "hold_id": row.hold_id,
        "package_bytes": row.package_bytes,
        "package_sha256": row.package_sha256,
        "created": format_rfc3339(row.created_us),
        "finished": format_rfc3339(row.finished_us) if row.finished_us else None,
        "download": f"/api/v1/exports/{row.id}/download"
        if row.state == "done"
        else None,
    }


async def create_export(request: web.Request) -> web.Response:
    evidence = request.app[EVIDENCE]
    _, jobs = evidence.started()
    camera_id, start_us, end_us, case_id, reason = _range_request(
        request, await json_object(request, RANGE_FIELDS)
    )
    row = await jobs.submit(
        camera_id, start_us, end_us, case_id, reason, request_actor(request)
    )
    return _json(
        _export_json(row, evidence), 202, {"Location": f"/api/v1/exports/{row.id}"}
    )


async def _visible_export(request: web.Request) -> ExportRow:
    evidence = request.app[EVIDENCE]
    context = evidence.context
    export_id = request.match_info["export_id"]
    row: ExportRow | None = await context.index_call(
        evidence_db.export_by_id, context.index, export_id
    )
    if row is None or not _in_scope(request, row.camera_id):
        raise NotFound(f"unknown export {export_id!r}")  # the same for another camera's
    return row


async def get_export(request: web.Request) -> web.Response:
    row = await _visible_export(request)
    return _json(_export_json(row, request.app[EVIDENCE]))


async def download_export(request: web.Request) -> web.StreamResponse:
    row = await _visible_export(request)
    if row.state != "done":
        raise Conflict(f"export {row.id} is {row.state}, not done")
    _, jobs = request.app[EVIDENCE].started()
    await _audit(
        request,
        "export-download",
        f"export {row.id}",
        {"case_id": row.case_id, "package_sha256": row.package_sha256},
        row.camera_id,
    )
    path = jobs.package_path(row.id)
    try:
        size = (await asyncio.to_thread(path.stat)).st_size
    except FileNotFoundError as exc:
        raise NotFound(f"the package of export {row.id} was removed") from exc
    # Range as for playback (nvr.api.ranges): an unsupported header sends it whole
    wanted = byte_range(request, size)
    first, stop = wanted if wanted is not None else (0, size)
    name = f"nvr-export-{row.camera_id}-{row.id}.zip"
    response = web.StreamResponse(
        status=206 if wanted is not None else 200,
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Package-SHA256": row.package_sha256 or "",
            "Accept-Ranges": "bytes",
        },
    )
    response.content_length = stop - first
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {first}-{stop - 1}/{size}"
    await response.prepare(request)
    if request.method != "HEAD":
        await _send_file(response, path, first, stop)
    return response


async def _send_file(
    response: web.StreamResponse, path: Path, first: int, stop: int
) -> None:
    """Writes bytes [first, stop) of the file, read in threads one chunk at a time."""
    descriptor = await asyncio.to_thread(os.open, path, os.O_RDONLY)
    try:
        await send_span(
            response,
            lambda offset, length: os.pread(descriptor, length, offset),
            (first, stop),
            DOWNLOAD_CHUNK_BYTES,
        )
    finally:
        os.close(descriptor)


# keys and verification


async def list_keys(request: web.Request) -> web.Response:
    key, _ = request.app[EVIDENCE].started()
    public = key.public_key()
    return _json(
        {
            "keys": [
                {
                    "algorithm": "Ed25519",
                    "sha256": key_fingerprint(public),
                    "public_key_pem": public_key_pem(public).decode("ascii"),
                }
            ]
        }
    )


async def verify(request: web.Request) -> web.Response:
    """Verifies an uploaded package: a raw application/zip body, or multipart with a
    ``package`` file part and an optional ``public_key`` PEM part. Without a key given,
    the server's own signing key is the trusted one."""
    evidence = request.app[EVIDENCE]
    key, _ = evidence.started()
    await asyncio.to_thread(evidence.exports_dir.mkdir, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=evidence.exports_dir, suffix=".upload")
    os.close(fd)
    upload = Path(name)
    try:
        try:
            trusted_pem = await _receive_upload(request, upload)
        except (HttpProcessingError, ValueError) as exc:  # issue 7: fuzzing found 500s
            raise RequestError(f"malformed upload: {exc}") from exc
        given = trusted_pem is not None
        trusted = trusted_pem if given else public_key_pem(key.public_key())
        report = await asyncio.to_thread(
            verify_package, upload, trusted, None, "the uploaded package"
        )
    finally:
        await asyncio.to_thread(upload.unlink, missing_ok=True)
    export_id = _claimed_export_id(report.manifest or {})
    await _audit(
        request,
        "verify",
        f"package {export_id or 'unknown'}",
        {
            "passed": report.passed,
            "trusted_key": "given" if given else "server",
            "failed": [c.name for c in report.checks if not c.passed],
        },
    )
    return _json(
        {
            "passed": report.passed,
            "trusted_key": "given" if given else "server",
            "export_id": export_id,
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail}
                for c in report.checks
            ],
        }
    )


def _claimed_export_id(manifest: Mapping[str, Any]) -> str | None:
    """The manifest's export id if it looks like one (a short printable string): it
    comes from the upload, and goes into the audit log and the answer."""
    export_id = manifest.get("export_id")
    if (
        isinstance(export_id, str)
        and 0 < len(export_id) <= MAX_CASE_ID
        and export_id.isprintable()
    ):
        return export_id
    return None


async def _receive_upload(request: web.Request, path: Path) -> bytes | None:
    """Streams the package to ``path``; returns the public key PEM part if one came."""
    if request.content_type != "multipart/form-data":
        await _stream_to(request.content.iter_chunked(UPLOAD_CHUNK_BYTES), path)
        return None
    trusted: bytes | None = None
    seen_package = False
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise RequestError("nested multipart bodies are not accepted")
        if part.name == "package":
            await _stream_to(_part_chunks(part), path)
            seen_package = True
        elif part.name == "public_key":
            trusted = await part.read()
        else:
            raise RequestError(f"unexpected form field {part.name!r}")
    if not seen_package:
        raise RequestError("the form has no 'package' file")
    return trusted


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(UPLOAD_CHUNK_BYTES):
        yield chunk


async def _stream_to(chunks: AsyncIterator[bytes], path: Path) -> None:
    size = 0
    with open(path, "wb") as f:  # noqa: ASYNC230 - each write is one chunk to a local disk
        async for chunk in chunks:
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise TooLarge(f"package larger than {MAX_UPLOAD_BYTES} bytes")
            await asyncio.to_thread(f.write, chunk)


# holds


def _hold_json(row: HoldRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "camera": row.camera_id,
        "start": format_rfc3339(row.start_us),
        "end": format_rfc3339(row.end_us),
        "case_id": row.case_id,
        "reason": row.reason,
        "created_by": row.created_by,
        "created": format_rfc3339(row.created_us),
        "released_by": row.released_by,
        "released": format_rfc3339(row.released_us) if row.released_us else None,
    }


async def create_hold(request: web.Request) -> web.Response:
    context = request.app[EVIDENCE].context
    body = await json_object(request, (*RANGE_FIELDS, "cameras"))
    if "cameras" in body:
        return await _create_holds(request, body)
    camera_id, start_us, end_us, case_id, reason = _range_request(
        request, body, MAX_HOLD_US
    )
    row = await context.index_call(
        evidence_db.place_hold,
        context.index,
        camera_id,
        start_us,
        end_us,
        case_id,
        reason,
        request_actor(request),
    )
    return _json(_hold_json(row), 201, {"Location": _holds_location(case_id)})


async def _create_holds(request: web.Request, body: dict[str, Any]) -> web.Response:
    """retention (issue 4): ``{"cameras": [...], start, end, case_id, reason}`` holds
    the range on every listed camera (one hold each); all are checked before any is
    placed. Answers 201 with ``{"holds": [...]}``."""
    context = request.app[EVIDENCE].context
    cameras = body.get("cameras")
    if (
        not isinstance(cameras, list)
        or not cameras
        or not all(isinstance(camera, str) for camera in cameras)
    ):
        raise RequestError("'cameras' must be a non-empty list of camera ids")
    requests = [
        _range_request(request, {**body, "camera": camera}, MAX_HOLD_US)
        for camera in cameras
    ]
    rows = [
        await context.index_call(
            evidence_db.place_hold, context.index, *args, request_actor(request)
        )
        for args in requests
    ]
    case_id = requests[0][3]
    return _json(
        {"holds": [_hold_json(row) for row in rows]},
        201,
        {"Location": _holds_location(case_id)},
    )


async def list_holds(request: web.Request) -> web.Response:
    evidence = request.app[EVIDENCE]
    context = evidence.context
    camera_id = request.query.get("camera")
    if camera_id is not None:
        _camera(request, camera_id)
    rows: list[HoldRow] = await context.index_call(
        evidence_db.list_holds,
        context.index,
        camera_id,
        request.query.get("case_id"),
        request.query.get("include_released") == "true",
    )
    visible = [
        row
        for row in rows
        if camera_visible(
            request, row.camera_id, evidence.camera_groups.get(row.camera_id)
        )
    ]
    return _json({"holds": [_hold_json(row) for row in visible]})


async def release_hold(request: web.Request) -> web.Response:
    context = request.app[EVIDENCE].context
    text = request.match_info["hold_id"]
    # ids as nvr writes them: int() would also read "0_1", " 1", "+1" or "１" as hold 1
    if not HOLD_ID.fullmatch(text):
        raise NotFound(f"unknown hold {text!r}")
    hold_id = int(text)
    if hold_id >= 2**63:  # issue 7: a larger id overflowed the driver (500)
        raise NotFound(f"unknown hold {hold_id}")
    held: HoldRow | None = await context.index_call(
        evidence_db.hold_by_id, context.index, hold_id
    )
    if held is None or not _in_scope(request, held.camera_id):
        raise NotFound(f"unknown hold {hold_id}")  # the same for another camera's
    row = await context.index_call(
        evidence_db.release_hold, context.index, hold_id, request_actor(request)
    )
    return _json(_hold_json(row))


# audit log


def _audit_json(record: AuditRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "at": format_rfc3339(record.at_us),
        "at_us": record.at_us,
        "actor": record.actor,
        "action": record.action,
        "camera": record.camera_id,
        "subject": record.subject,
        "details": json.loads(record.details),
        "details_json": record.details,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def _optional_time(query: Mapping[str, str], name: str) -> int | None:
    text = query.get(name)
    if not text:
        return None
    try:
        return parse_rfc3339_us(text)
    except RequestError as exc:
        raise RequestError(f"{name}: {exc}") from exc


async def audit_log(request: web.Request) -> web.Response:
    """Audit rows, oldest first, filtered by ``start``, ``end``, ``actor``, ``action``;
    a scoped token sees rows about its cameras and rows about no camera."""
    evidence = request.app[EVIDENCE]
    context = evidence.context
    cameras = visible_cameras(request, evidence.camera_groups)
    query = request.query
    try:
        limit = min(max(int(query.get("limit", "1000")), 1), 10_000)
    except ValueError as exc:
        raise RequestError("limit must be an integer") from exc
    start_us = _optional_time(query, "start")
    end_us = _optional_time(query, "end")
    records = await context.index_call(
        lambda: evidence_db.audit_entries(
            context.index,
            start_us=start_us,
            end_us=end_us,
            actor=query.get("actor") or None,
            action=query.get("action") or None,
            cameras=cameras,
            limit=limit,
        )
    )
    return _json({"entries": [_audit_json(record) for record in records]})
