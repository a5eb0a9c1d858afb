"""``python -m engramdb.server serve|mcp|keys add``: the server commands on their own."""

from __future__ import annotations

import typer

from engramdb.server.cli import register

app = typer.Typer(
    name="engramdb-server",
    help="engramdb's HTTP and MCP servers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
register(app)

if __name__ == "__main__":
    app()
