"""Parsing JSON request bodies strictly enough that no input reaches the index unfit."""

import json
from collections.abc import Collection
from typing import Any

from aiohttp import web

from nvr.errors import RequestError

MAX_DEPTH = 32


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _storable_text(value: Any) -> None:
    """JSON may escape lone UTF-16 surrogates ("\\ud800") and NUL ("\\u0000"), which
    no text column stores (PostgreSQL refuses NUL); ValueError for either."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(
                "text holds a NUL character (\\u0000), which is not stored"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                "text holds an unpaired surrogate (not valid Unicode)"
            ) from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable_text(key)
            _storable_text(item)
    elif isinstance(value, list):
        for item in value:
            _storable_text(item)


def load_json_body(text: str) -> Any:
    """``json.loads`` that raises ValueError for over-deep nesting or invalid text."""
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from exc
    if _depth(value) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    _storable_text(value)
    return value


async def json_object(request: web.Request, allowed: Collection[str]) -> dict[str, Any]:
    """The request's JSON object body; RequestError if it is not one or has a key
    outside ``allowed`` (a misspelt optional field must not be silently ignored)."""
    try:
        body = await request.json(loads=load_json_body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"the body must be a JSON object: {exc}") from exc
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise RequestError(
            f"{unknown[0]!r}: unknown field (allowed: {', '.join(sorted(allowed))})"
        )
    return body
