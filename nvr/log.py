"""Service logging: one line per event, ``key=value`` fields, credentials stripped."""

import logging
import re
import sys
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_URL_CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def redact_url(url: str) -> str:
    """The URL without user and password, safe to log or return from the API."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_CREDENTIALS.sub(r"\1***@", url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, f"***@{netloc}", parts.path, parts.query, ""))


def redact_text(text: str) -> str:
    """Any ``scheme://user:pass@`` inside free text (such as a PyAV error) is masked."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


def fields(**values: Any) -> str:
    """Formats context fields as ``key=value`` pairs, quoting values with spaces."""
    parts = []
    for key, value in values.items():
        text = str(value)
        if not text or any(ch.isspace() for ch in text) or '"' in text:
            text = '"' + text.replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


class _RedactingFormatter(logging.Formatter):
    """Masks URL credentials in every formatted line, whatever the caller passed."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class _MalformedRequestFilter(logging.Filter):
    """Turns aiohttp's report of an unparsable request into one WARNING line.

    aiohttp answers such a request 400 itself, before any handler or token check, and
    logs it at ERROR with a traceback; anyone who can reach the port could fill the log
    with them. A malformed request is the client's fault: the line names the client and
    the parser's complaint, cut short, without the traceback.
    """

    def __init__(self, malformed: type[Exception]) -> None:
        super().__init__()
        self._malformed = malformed  # aiohttp's BadHttpMessage

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, self._malformed):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "malformed HTTP request refused %s"
            record.args = (fields(error=str(error).splitlines()[0][:200]),)
            record.exc_info = record.exc_text = None
        return True


def setup_logging(level: str = "INFO") -> None:
    """Sends one UTC-stamped line per event to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = _RedactingFormatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # imported here: tools that log but serve nothing (nvr verify) never load aiohttp
    from aiohttp.http_exceptions import BadHttpMessage

    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _MalformedRequestFilter) for f in server.filters):
        server.addFilter(_MalformedRequestFilter(BadHttpMessage))
