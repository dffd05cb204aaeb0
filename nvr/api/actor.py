"""Who made a request: the authenticated token's name, recorded as the actor of audits."""

from aiohttp import web

ACTOR_KEY = web.RequestKey("nvr.actor", str)
ANONYMOUS = "anonymous"


def request_actor(request: web.Request) -> str:
    """The name of the token that authenticated ``request``, or "anonymous"."""
    actor = request.get(ACTOR_KEY)
    return ANONYMOUS if actor is None else actor
