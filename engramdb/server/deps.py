"""Request dependencies: the shared state, and the key behind a request (after rate limiting)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from engramdb.server.config import ServerState, is_loopback
from engramdb.server.errors import ForbiddenError
from engramdb.server.keys import LOCAL, ApiKey
from engramdb.server.schemas import ID_PATTERN, NAME_PATTERN

__all__ = ["AgentPath", "IdPath", "Key", "State", "authenticate", "get_state"]


def get_state(request: Request) -> ServerState:
    """The server's shared state."""
    state: ServerState = request.app.state.engramdb
    return state


def authenticate(state: ServerState, authorization: str | None, client: str | None) -> ApiKey:
    """The key of a request (LOCAL on a keyless server), after taking a rate-limit token.

    Raises:
        AuthError: a keyed server and no or a wrong key.
        ForbiddenError: a keyless server and a client that is not on loopback.
        RateLimitedError: the key (or client) is over its rate.
    """
    if state.keys is None:
        if not is_loopback(client):
            raise ForbiddenError(
                f"this server runs without keys and serves only loopback clients, not {client!r}; "
                "start it with --keys FILE to serve other hosts"
            )
        state.limiter.check(f"client:{client}")
        return LOCAL
    key = state.keys.authenticate(authorization)
    state.limiter.check(f"key:{key.name}")
    return key


async def _principal(request: Request) -> ApiKey:
    client = request.client.host if request.client else None
    key = authenticate(get_state(request), request.headers.get("authorization"), client)
    request.state.key_name = key.name  # for the metrics middleware
    return key


State = Annotated[ServerState, Depends(get_state)]
Key = Annotated[ApiKey, Depends(_principal)]
AgentPath = Annotated[str, Path(pattern=NAME_PATTERN, description="The agent's name.")]
IdPath = Annotated[str, Path(pattern=ID_PATTERN, description="A memory id (ULID).")]
