"""REST routes for whole agents: consolidation, snapshots, checkpoints, events; and metrics."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from engramdb.errors import ValidationError
from engramdb.server.deps import AgentPath, Key, State
from engramdb.server.errors import PayloadTooLargeError
from engramdb.server.schemas import (
    ERROR_RESPONSES,
    NAME_PATTERN,
    CheckpointIn,
    ConsolidateIn,
)

__all__ = ["router"]

router = APIRouter(responses=ERROR_RESPONSES)
SnapshotKey = Annotated[
    str | None,
    Header(alias="X-Snapshot-Key", description="Passphrase of an encrypted snapshot."),
]


@router.delete("/v1/agents/{agent}", tags=["agents"])
def delete_agent(agent: AgentPath, key: Key, state: State) -> dict[str, int]:
    """Delete every memory of an agent (admin)."""
    key.check(agent, "admin")
    return {"deleted": state.service.delete_agent(agent)}


@router.post("/v1/agents/{agent}/consolidate", tags=["agents"])
def consolidate(agent: AgentPath, body: ConsolidateIn, key: Key, state: State) -> dict[str, Any]:
    """Consolidate the agent's memory (admin); returns the agent's report."""
    key.check(agent, "admin")
    return state.service.consolidate(agent, dry_run=body.dry_run)


@router.get(
    "/v1/agents/{agent}/snapshot",
    tags=["snapshots"],
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def export_snapshot(
    agent: AgentPath,
    key: Key,
    state: State,
    vectors: Literal["float32", "float16", "int8"] = "float32",
    snapshot_key: SnapshotKey = None,
) -> FileResponse:
    """The agent's snapshot file (read)."""
    key.check(agent, "read")
    path = state.service.export_snapshot(agent, vectors=vectors, key=snapshot_key)
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{agent}.egm",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.post("/v1/agents/{agent}/snapshot", tags=["snapshots"])
async def import_snapshot(
    agent: AgentPath,
    request: Request,
    key: Key,
    state: State,
    mode: Literal["fail", "replace", "merge"] = "fail",
    as_agent: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    snapshot_key: SnapshotKey = None,
) -> dict[str, Any]:
    """Import a snapshot file sent as the body into the agent, or into ``as_agent`` (admin).

    ``mode``: ``fail`` (409 if the agent has memories), ``replace`` or ``merge``.
    """
    target = as_agent or agent
    key.check(agent, "admin")
    key.check(target, "admin")
    limit = state.config.max_snapshot_bytes
    with tempfile.TemporaryDirectory(prefix="engramdb-upload-") as tmp:
        path = Path(tmp) / "upload.egm"
        size = 0
        with path.open("wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(
                        f"snapshot upload exceeds the limit of {limit} bytes; start the server "
                        "with a larger --max-snapshot-bytes"
                    )
                fh.write(chunk)
        if size == 0:
            raise ValidationError("the request body is empty; send the snapshot file as the body")
        return await run_in_threadpool(
            state.service.import_snapshot, target, path, mode=mode, key=snapshot_key
        )


@router.post("/v1/agents/{agent}/checkpoints", status_code=201, tags=["checkpoints"])
def create_checkpoint(
    agent: AgentPath, body: CheckpointIn, key: Key, state: State
) -> dict[str, Any]:
    """Name the agent's current state (write)."""
    key.check(agent, "write")
    return state.service.checkpoint(agent, body.name)


@router.get("/v1/agents/{agent}/checkpoints", tags=["checkpoints"])
def list_checkpoints(agent: AgentPath, key: Key, state: State) -> dict[str, Any]:
    """The agent's checkpoints, oldest first."""
    key.check(agent, "read")
    from engramdb.server.service import plain

    return {"checkpoints": plain(list(state.service.engine.checkpoints(agent=agent)))}


@router.post("/v1/agents/{agent}/rollback", tags=["checkpoints"])
def rollback(agent: AgentPath, body: CheckpointIn, key: Key, state: State) -> dict[str, Any]:
    """Restore the agent to a named checkpoint (admin)."""
    key.check(agent, "admin")
    return state.service.rollback(agent, body.name)


@router.get(
    "/v1/agents/{agent}/events",
    tags=["events"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    agent: AgentPath,
    key: Key,
    state: State,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Server-sent events of the agent's changes; ``Last-Event-ID`` replays missed ones."""
    key.check(agent, "read")
    after: int | None = None
    if last_event_id is not None and last_event_id.strip():
        try:
            after = int(last_event_id)
        except ValueError:
            raise ValidationError(
                f"Last-Event-ID {last_event_id!r:.40} is not an event id; send the id of the "
                "last event received (an integer)"
            ) from None
        if after < 0:
            raise ValidationError(f"Last-Event-ID {after} is negative; event ids start at 1")
    return StreamingResponse(
        state.hub.stream(agent, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/metrics",
    tags=["server"],
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(key: Key, state: State) -> PlainTextResponse:
    """Prometheus metrics: this key's own requests and its agents' memory counts.

    A key with admin over every agent (``agents = ["*"]``) sees every key's series.
    """
    engine = state.service.engine
    with engine.mutex:
        counts = [
            (a, engine.count(agent=a, include_archived=False)) for a in key.visible(engine.agents())
        ]
    text = state.metrics.render(counts, key=None if key.sees_everything else key.name)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
