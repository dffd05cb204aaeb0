"""The OpenAPI 3.1 document of the v1 API, as data, served at ``GET /api/v1/openapi.json``.

Every route ``make_app`` registers is described here; ``tests/api/test_openapi.py``
fails when a route and this document disagree, and ``tests/api/test_fuzz.py`` fuzzes
the server against it. To add a route: add its operation to ``_paths``. HEAD, which
aiohttp adds beside every GET, answers as the GET does without a body and is not listed.
"""

from typing import Any

from aiohttp import web

from nvr import __version__
from nvr.api.workers import openapi_paths as workers_openapi_paths
from nvr.config import CAMERA_ID_PATTERN

OPENAPI_PATH = "/api/v1/openapi.json"
Schema = dict[str, Any]

_NULLABLE_TEXT: Schema = {"type": ["string", "null"]}
_TIME: Schema = {"type": "string", "format": "date-time"}
_NULLABLE_TIME: Schema = {"type": ["string", "null"], "format": "date-time"}
_COUNT: Schema = {"type": "integer", "minimum": 0}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: Schema, required: list[str] | None = None) -> Schema:
    """A JSON object; every property is required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


def _json(description: str, schema: Schema) -> Schema:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _binary(description: str, media_type: str) -> Schema:
    schema = {"type": "string", "format": "binary"}
    return {"description": description, "content": {media_type: {"schema": schema}}}


def _errors(*statuses: int) -> Schema:
    """Error answers: the listed statuses, plus ``default`` for 405, 413, 429 and 5xx."""
    answers = {
        str(status): {"$ref": "#/components/responses/Error"} for status in statuses
    }
    answers["default"] = {"$ref": "#/components/responses/Error"}
    return answers


def _query(
    name: str, description: str, schema: Schema, required: bool = False
) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def _path_param(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


_RANGE = [
    _query("start", "range start, RFC 3339", _TIME, required=True),
    _query(
        "end", "range end, RFC 3339; at most 24 h after start", _TIME, required=True
    ),
]
_CAMERA_ID = _path_param("camera_id", {"type": "string", "pattern": CAMERA_ID_PATTERN})
_RANGE_BODY: Schema = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "camera": {"type": "string", "minLength": 1},
                    "start": _TIME,
                    "end": _TIME,
                    "case_id": {"type": "string", "minLength": 1, "maxLength": 128},
                    "reason": {"type": "string", "minLength": 1, "maxLength": 1024},
                },
                "required": ["camera", "start", "end", "case_id", "reason"],
            }
        }
    },
}


def _schemas() -> dict[str, Schema]:
    return {
        "Error": _object(
            {
                "error": _object(
                    {"status": {"type": "integer"}, "message": {"type": "string"}}
                )
            }
        ),
        "Camera": _object(
            {
                "id": {"type": "string"},
                "group": {"type": "string"},
                "url": {"type": "string", "description": "without credentials"},
                "state": {
                    "enum": [
                        "connecting",
                        "recording",
                        "reconnecting",
                        "failed",
                        "stopped",
                    ]
                },
                "last_packet_time": _NULLABLE_TIME,
                "bitrate_bps": _COUNT,
                "packets": _COUNT,
                "reconnects": _COUNT,
                "last_error": _NULLABLE_TEXT,
            }
        ),
        "Segment": _object(
            {
                "id": {"type": "integer"},
                "run_id": {"type": "string"},
                "start": _TIME,
                "end": _TIME,
                "media_duration_s": {"type": "number"},
                "bytes": _COUNT,
                "video_codec": {"type": "string"},
                "audio_codec": _NULLABLE_TEXT,
                "width": {"type": "integer"},
                "height": {"type": "integer"},
                "sha256": _NULLABLE_TEXT,
                "tier": {"enum": ["local", "local+s3", "s3"]},
            }
        ),
        "Gap": _object(
            {"start": _TIME, "end": _NULLABLE_TIME, "reason": {"type": "string"}}
        ),
        "Export": _object(
            {
                "id": {"type": "string"},
                "camera": {"type": "string"},
                "start": _TIME,
                "end": _TIME,
                "case_id": {"type": "string"},
                "reason": {"type": "string"},
                "exported_by": {"type": "string"},
                "state": {"enum": ["queued", "running", "done", "failed"]},
                "phase": _NULLABLE_TEXT,
                "progress": {"type": ["number", "null"]},
                "error": _NULLABLE_TEXT,
                "hold_id": {"type": ["integer", "null"]},
                "package_bytes": {"type": ["integer", "null"]},
                "package_sha256": _NULLABLE_TEXT,
                "created": _TIME,
                "finished": _NULLABLE_TIME,
                "download": _NULLABLE_TEXT,
            }
        ),
        "Hold": _object(
            {
                "id": {"type": "integer"},
                "camera": {"type": "string"},
                "start": _TIME,
                "end": _TIME,
                "case_id": {"type": "string"},
                "reason": {"type": "string"},
                "created_by": {"type": "string"},
                "created": _TIME,
                "released_by": _NULLABLE_TEXT,
                "released": _NULLABLE_TIME,
            }
        ),
        "AuditEntry": _object(
            {
                "id": {"type": "integer"},
                "at": _TIME,
                "at_us": {"type": "integer"},
                "actor": {"type": "string"},
                "action": {"type": "string"},
                "camera": _NULLABLE_TEXT,
                "subject": {"type": "string"},
                "details": {"type": ["object", "null"]},
                "details_json": {"type": "string"},
                "prev_hash": {"type": "string"},
                "hash": {"type": "string"},
            }
        ),
        "Check": _object({"ok": {"type": "boolean"}, "detail": {"type": "string"}}),
    }


def _health_paths() -> dict[str, Schema]:
    public: list[Schema] = []
    return {
        "/healthz": {
            "get": {
                "summary": "Liveness: the process answers",
                "security": public,
                "responses": {
                    "200": _json(
                        "alive",
                        _object(
                            {"status": {"const": "ok"}, "version": {"type": "string"}}
                        ),
                    )
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: index, storage root and S3 (when configured)",
                "security": public,
                "responses": {
                    "200": _json("every check passed", _ref("Readiness")),
                    "503": _json("a check failed; each is named", _ref("Readiness")),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format); permission metrics",
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(401, 403),
                },
            }
        },
        OPENAPI_PATH: {
            "get": {
                "summary": "This document",
                "security": public,
                "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})},
            }
        },
    }


def _recording_paths() -> dict[str, Schema]:
    return {
        "/api/v1/cameras": {
            "get": {
                "summary": "Cameras the token may see, with live state",
                "responses": {
                    "200": _json(
                        "cameras",
                        _object(
                            {"cameras": {"type": "array", "items": _ref("Camera")}}
                        ),
                    ),
                    **_errors(401, 403),
                },
            }
        },
        "/api/v1/cameras/{camera_id}/recordings": {
            "get": {
                "summary": "Segments and gaps of one camera in a range",
                "parameters": [_CAMERA_ID, *_RANGE],
                "responses": {
                    "200": _json(
                        "recordings",
                        _object(
                            {
                                "camera": {"type": "string"},
                                "start": _TIME,
                                "end": _TIME,
                                "segments": {"type": "array", "items": _ref("Segment")},
                                "gaps": {"type": "array", "items": _ref("Gap")},
                            }
                        ),
                    ),
                    **_errors(400, 401, 403, 404),
                },
            }
        },
        "/api/v1/cameras/{camera_id}/video.mp4": {
            "get": {
                "summary": "A playable MP4 of a range; byte ranges (RFC 9110 §14) supported",
                "parameters": [_CAMERA_ID, *_RANGE],
                "responses": {
                    "200": _binary("the whole clip", "video/mp4"),
                    "206": _binary("the requested bytes of the clip", "video/mp4"),
                    **_errors(400, 401, 403, 404, 416),
                },
            }
        },
        "/api/v1/storage": {
            "get": {
                "summary": "Where recordings live and how far S3 replication lags",
                "responses": {
                    "200": _json(
                        "storage",
                        {
                            "type": "object",
                            "properties": {
                                "s3": {
                                    "type": "object",
                                    "properties": {"enabled": {"type": "boolean"}},
                                    "required": ["enabled"],
                                },
                                "local": _object(
                                    {
                                        "root": {"type": "string"},
                                        "error": {
                                            "type": "string",
                                            "description": "why the root is "
                                            "unreadable (only then present)",
                                        },
                                    },
                                    ["root"],
                                ),
                            },
                            "required": ["s3", "local"],
                        },
                    ),
                    **_errors(401, 403),
                },
            }
        },
    }


def _evidence_paths() -> dict[str, Schema]:
    export_id = _path_param("export_id", {"type": "string"})
    return {
        "/api/v1/exports": {
            "post": {
                "summary": "Start a signed evidence export of a range",
                "requestBody": _RANGE_BODY,
                "responses": {
                    "202": _json("export queued", _ref("Export")),
                    **_errors(400, 401, 403, 404, 413),
                },
            }
        },
        "/api/v1/exports/{export_id}": {
            "get": {
                "summary": "An export's state and progress",
                "parameters": [export_id],
                "responses": {
                    "200": _json("export", _ref("Export")),
                    **_errors(401, 403, 404),
                },
            }
        },
        "/api/v1/exports/{export_id}/download": {
            "get": {
                "summary": "The finished export package",
                "parameters": [export_id],
                "responses": {
                    "200": _binary("package", "application/zip"),
                    **_errors(401, 403, 404, 409),
                },
            }
        },
        "/api/v1/keys": {
            "get": {
                "summary": "Public keys that sign export packages",
                "responses": {
                    "200": _json(
                        "keys",
                        _object(
                            {
                                "keys": {
                                    "type": "array",
                                    "items": _object(
                                        {
                                            "algorithm": {"const": "Ed25519"},
                                            "sha256": {"type": "string"},
                                            "public_key_pem": {"type": "string"},
                                        }
                                    ),
                                }
                            }
                        ),
                    ),
                    **_errors(401, 403),
                },
            }
        },
        "/api/v1/verify": {
            "post": {
                "summary": "Verify an export package (raw zip, or multipart package+public_key)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/zip": {
                            "schema": {"type": "string", "format": "binary"}
                        },
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "package": {"type": "string", "format": "binary"},
                                    "public_key": {
                                        "type": "string",
                                        "format": "binary",
                                    },
                                },
                                "required": ["package"],
                            }
                        },
                    },
                },
                "responses": {
                    "200": _json(
                        "verification report",
                        _object(
                            {
                                "passed": {"type": "boolean"},
                                "trusted_key": {"enum": ["given", "server"]},
                                "export_id": _NULLABLE_TEXT,
                                "checks": {
                                    "type": "array",
                                    "items": _object(
                                        {
                                            "name": {"type": "string"},
                                            "passed": {"type": "boolean"},
                                            "detail": _NULLABLE_TEXT,
                                        }
                                    ),
                                },
                            }
                        ),
                    ),
                    **_errors(400, 401, 403, 413),
                },
            }
        },
        **_hold_paths(),
        "/api/v1/audit": {
            "get": {
                "summary": "The audit log, oldest first",
                "parameters": [
                    _query("start", "entries at or after, RFC 3339", _TIME),
                    _query("end", "entries before, RFC 3339", _TIME),
                    _query("actor", "token name", {"type": "string"}),
                    _query(
                        "action", "e.g. playback, export, deletion", {"type": "string"}
                    ),
                    _query(
                        "limit",
                        "at most this many (1..10000)",
                        {"type": "integer", "minimum": 1, "maximum": 10_000},
                    ),
                ],
                "responses": {
                    "200": _json(
                        "audit entries",
                        _object(
                            {"entries": {"type": "array", "items": _ref("AuditEntry")}}
                        ),
                    ),
                    **_errors(400, 401, 403),
                },
            }
        },
    }


def _hold_paths() -> dict[str, Schema]:
    return {
        "/api/v1/holds": {
            "post": {
                "summary": "Place a legal hold: retention keeps the range",
                "requestBody": _RANGE_BODY,
                "responses": {
                    "201": _json("hold placed", _ref("Hold")),
                    **_errors(400, 401, 403, 404, 413),
                },
            },
            "get": {
                "summary": "Holds, filtered by camera and case",
                "parameters": [
                    _query("camera", "camera id", {"type": "string"}),
                    _query("case_id", "case reference", {"type": "string"}),
                    _query(
                        "include_released",
                        "also released holds",
                        {"enum": ["true", "false"]},
                    ),
                ],
                "responses": {
                    "200": _json(
                        "holds",
                        _object({"holds": {"type": "array", "items": _ref("Hold")}}),
                    ),
                    **_errors(401, 403, 404),
                },
            },
        },
        "/api/v1/holds/{hold_id}": {
            "delete": {
                "summary": "Release a hold",
                "parameters": [_path_param("hold_id", {"type": "integer"})],
                "responses": {
                    "200": _json("released hold", _ref("Hold")),
                    **_errors(401, 403, 404),
                },
            }
        },
    }


def _retention_paths() -> dict[str, Schema]:
    """Groups and the sweep plan (issue 4, nvr.retention.api)."""
    group_fields: Schema = {
        "retention_days": {"type": "integer", "minimum": 1, "maximum": 3650},
        "local_days": {"type": ["number", "null"], "minimum": 0, "maximum": 3650},
        "priority": {"type": "integer", "minimum": 0, "maximum": 1000},
    }
    change = {
        "type": "object",
        "properties": {**group_fields, "confirm": {"type": "boolean"}},
        "additionalProperties": False,
    }
    impact = _object({"segments": _COUNT, "bytes": _COUNT})
    refused = _json(
        "would delete recordings; repeat with confirm: true",
        {
            "type": "object",
            "properties": {
                "error": {"type": "object"},
                "applied": {"const": False},
                "would_delete": impact,
            },
            "required": ["error", "applied", "would_delete"],
        },
    )
    applied = {"applied": {"const": True}, "will_delete": impact}
    return {
        "/api/v1/groups": {
            "get": {
                "summary": "Camera groups and their retention",
                "responses": {
                    "200": _json(
                        "groups",
                        _object({"groups": {"type": "array", "items": _ref("Group")}}),
                    ),
                    **_errors(401, 403),
                },
            },
            "post": {
                "summary": "Create a group",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["name", "retention_days"],
                                "properties": {
                                    "name": {"type": "string"},
                                    **group_fields,
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json("created", _ref("Group")),
                    **_errors(400, 401, 403, 409, 413),
                },
            },
        },
        "/api/v1/groups/{name}": {
            "patch": {
                "summary": "Change a group's retention; shortening it needs confirm",
                "parameters": [_path_param("name", {"type": "string"})],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": change}},
                },
                "responses": {
                    "200": _json(
                        "changed", {"allOf": [_ref("Group"), _object(applied)]}
                    ),
                    "409": refused,
                    **_errors(400, 401, 403, 404, 413),
                },
            }
        },
        "/api/v1/cameras/{camera_id}/group": {
            "put": {
                "summary": "Move a camera to another group; losing recordings needs confirm",
                "parameters": [_CAMERA_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["group"],
                                "properties": {
                                    "group": {"type": "string"},
                                    "confirm": {"type": "boolean"},
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        "moved",
                        _object(
                            {
                                "camera": {"type": "string"},
                                "group": {"type": "string"},
                                **applied,
                            }
                        ),
                    ),
                    "409": refused,
                    **_errors(400, 401, 403, 404, 413),
                },
            }
        },
        "/api/v1/retention/plan": {
            "get": {
                "summary": "What a retention sweep at `at` (default now) would delete or spare",
                "parameters": [_query("at", "the sweep's instant, RFC 3339", _TIME)],
                "responses": {
                    "200": _json(
                        "plan",
                        _object(
                            {
                                "at_us": {"type": "integer"},
                                "truncated": {"type": "boolean"},
                                "items": {"type": "array", "items": _ref("PlanItem")},
                            }
                        ),
                    ),
                    **_errors(400, 401, 403),
                },
            }
        },
    }


def _retention_schemas() -> dict[str, Schema]:
    return {
        "Group": _object(
            {
                "name": {"type": "string"},
                "retention_days": {"type": "integer"},
                "local_days": {"type": ["number", "null"]},
                "priority": {"type": "integer"},
                "cameras": {"type": "array", "items": {"type": "string"}},
            }
        ),
        "PlanItem": _object(
            {
                "action": {"type": "string"},
                "camera": {"type": "string"},
                "segment": {"type": "integer"},
                "start": _TIME,
                "end": _TIME,
                "group": {"type": "string"},
                "tier": {"type": "string"},
                "bytes": _COUNT,
                "why": {"type": "string"},
                "holds": {
                    "type": "array",
                    "items": _object(
                        {"id": {"type": "integer"}, "case_id": {"type": "string"}}
                    ),
                },
            }
        ),
    }


def build_openapi() -> dict[str, Any]:
    """The whole document; a new dict on each call."""
    schemas = {**_schemas(), **_retention_schemas()}
    schemas["Readiness"] = _object(
        {
            "status": {"enum": ["ready", "not ready"]},
            "checks": {"type": "object", "additionalProperties": _ref("Check")},
        }
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "nvr",
            "version": __version__,
            "description": "Network video recorder API. Errors answer "
            '{"error": {"status", "message"}}.',
        },
        "security": [{"bearerAuth": []}],
        "paths": {
            **_health_paths(),
            **_recording_paths(),
            **_evidence_paths(),
            **_retention_paths(),
            **workers_openapi_paths(),
        },  # ingest load (issue 6)
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "nvr_<id>_<secret>, made by `nvr token create`",
                }
            },
            "schemas": schemas,
            "responses": {"Error": _json("an error, named", _ref("Error"))},
        },
    }


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(build_openapi())


def register_openapi(app: web.Application) -> None:
    """Adds ``GET /api/v1/openapi.json``; public in nvr.auth.permissions."""
    app.router.add_get(OPENAPI_PATH, get_openapi)
