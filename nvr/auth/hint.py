"""What ``nvr serve`` says when no token exists yet: how to create the first one."""

import logging

from nvr.auth.tokens import active_token_count
from nvr.index.repo import Index

log = logging.getLogger(__name__)


def first_token_hint() -> str:
    return (
        "no API token exists yet: every endpoint but /healthz, /readyz and "
        "/api/v1/openapi.json answers 401.\n"
        "  create the first admin token with:\n"
        "  nvr token create [--config FILE] --role admin --name admin"
    )


def warn_if_no_token(index: Index) -> bool:
    """Logs and prints the hint when no active token exists; True if it did. Blocking."""
    if active_token_count(index) > 0:
        return False
    log.warning("no active API token; see README, First admin token")
    print(first_token_hint(), flush=True)
    return True
