"""engramdb's servers: HTTP (FastAPI) with MCP mounted at ``/mcp``, and MCP over stdio.

Install the extras: ``pip install 'engramdb[server,mcp]'``. See ``docs/servers.md``.
"""

from __future__ import annotations

from engramdb.server.app import create_app
from engramdb.server.config import ServerConfig
from engramdb.server.keys import ApiKey, KeyRing, add_key, load_keys

__all__ = ["ApiKey", "KeyRing", "ServerConfig", "add_key", "create_app", "load_keys"]
