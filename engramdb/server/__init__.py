"""engramdb's servers: HTTP (FastAPI) with MCP mounted at ``/mcp``, and MCP over stdio.

Install the extras: ``pip install 'engramdb[server,mcp]'``. See ``docs/servers.md``.

Names load on first use, so ``engramdb mcp`` (stdio) does not import FastAPI and
``engramdb serve`` does not import what only stdio needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engramdb._lazy import lazy_names

if TYPE_CHECKING:
    from engramdb.server.app import create_app
    from engramdb.server.config import ServerConfig
    from engramdb.server.keys import ApiKey, KeyRing, add_key, load_keys

__all__ = ["ApiKey", "KeyRing", "ServerConfig", "add_key", "create_app", "load_keys"]

_HOMES = {
    "create_app": "engramdb.server.app",
    "ServerConfig": "engramdb.server.config",
    "ApiKey": "engramdb.server.keys",
    "KeyRing": "engramdb.server.keys",
    "add_key": "engramdb.server.keys",
    "load_keys": "engramdb.server.keys",
}


__getattr__, __dir__ = lazy_names("engramdb.server", _HOMES, globals(), __all__)
