"""The HTTP face's errors, and the one place that maps every error to a status and a body.

Every error response has one shape, whatever raised it::

    {"error": {"code": "not_found", "message": "no memory with id '01J...' for agent 'bot'"}}

The message is the engine error's own (what happened, the value, what to do).
A failure nobody foresaw answers 500 with a fixed message and is logged; no
traceback ever reaches a client.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from engramdb.errors import (
    EmbedderMismatchError,
    EmbedderUnavailableError,
    EngramError,
    NotFoundError,
    ReadOnlyError,
    SnapshotError,
    StoreClosedError,
    StoreLockedError,
    ValidationError,
)

if TYPE_CHECKING:  # FastAPI loads only with the HTTP app, not for MCP over stdio
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError

__all__ = [
    "STATUSES",
    "AuthError",
    "ConflictError",
    "ForbiddenError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "ServerError",
    "error_body",
    "install_error_handlers",
    "status_of",
]

log = logging.getLogger("engramdb.server")


class ServerError(EngramError):
    """Root of the errors the servers raise on their own account (not the engine's)."""


class AuthError(ServerError, PermissionError):
    """No key, or a key the server does not know (401)."""


class ForbiddenError(ServerError, PermissionError):
    """A known key asking for an agent or a scope it was not given (403)."""


class ConflictError(ServerError):
    """A write that would overwrite existing state without being told to (409)."""


class PayloadTooLargeError(ServerError, ValueError):
    """A request body over the server's limit (413)."""


class RateLimitedError(ServerError):
    """Too many requests for one key (429); ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


STATUSES: dict[type[Exception], tuple[int, str]] = {
    AuthError: (401, "unauthorized"),
    ForbiddenError: (403, "forbidden"),
    ConflictError: (409, "conflict"),
    PayloadTooLargeError: (413, "payload_too_large"),
    RateLimitedError: (429, "rate_limited"),
    NotFoundError: (404, "not_found"),
    EmbedderMismatchError: (422, "embedder_mismatch"),
    SnapshotError: (422, "bad_snapshot"),
    ValidationError: (422, "invalid"),
    ReadOnlyError: (405, "read_only"),
    StoreLockedError: (503, "store_locked"),
    StoreClosedError: (503, "store_closed"),
    EmbedderUnavailableError: (503, "embedder_unavailable"),
    EngramError: (500, "engine_error"),
}
"""Error class to (HTTP status, error code); the most specific class in the MRO wins."""

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
}


def status_of(error: BaseException) -> tuple[int, str]:
    """The (status, code) for an error: its closest class in :data:`STATUSES`, else 500."""
    for cls in type(error).__mro__:
        if cls in STATUSES:
            return STATUSES[cls]
    return 500, "internal"


def error_body(code: str, message: str) -> dict[str, Any]:
    """The one JSON error shape."""
    return {"error": {"code": code, "message": message}}


def error_response(error: BaseException) -> JSONResponse:
    """A JSON response for any error, with ``Retry-After`` for rate limits."""
    status, code = status_of(error)
    if status == 500:
        log.error("unexpected error", exc_info=error)
        message = (
            str(error)
            if isinstance(error, EngramError)
            else "internal error; the server log has the details"
        )
    else:
        message = str(error)
    headers = {}
    if isinstance(error, RateLimitedError):
        headers["Retry-After"] = str(max(1, round(error.retry_after + 0.5)))
    if isinstance(error, AuthError):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    # ("body", "items", 0, "text") -> "items[0].text"; the part ("body", "query") is dropped.
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or (str(loc[0]) if loc else "request")


def validation_message(exc: RequestValidationError) -> str:
    """One line per bad field: ``field: what is wrong (got value)``."""
    lines = []
    for err in exc.errors()[:10]:
        where = _field(tuple(err.get("loc", ())))
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r:.60})"
        lines.append(f"{where}: {err.get('msg', 'invalid')}{shown}")
    return "; ".join(lines) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with the one shape; FastAPI's own 422s and 404s included."""
    from fastapi.exceptions import RequestValidationError

    async def on_engine(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(error_body("invalid", validation_message(exc)), status_code=422)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )

    app.add_exception_handler(EngramError, on_engine)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_engine)
