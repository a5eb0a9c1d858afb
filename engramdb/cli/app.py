"""The ``engramdb`` command line: the Python API, one command per call.

Importing this module imports only typer, rich and the command modules, which
import nothing heavy at the top: ``engramdb --help`` answers at once, and a
command imports the engine (LanceDB, FAISS) when it runs, the model (torch,
sentence-transformers) only when it embeds, and the hyperbolic maths only for
a Poincaré store. Each command module registers its commands on :data:`app`;
every command runs inside :func:`~engramdb.cli.errors.cli_errors`, the one
place that turns errors into messages and exit codes.
"""

from __future__ import annotations

from engramdb.cli import consolidate, memories, snapshot
from engramdb.cli.common import app
from engramdb.server.cli import register as register_servers

__all__ = ["app", "main"]

COMMAND_MODULES = (memories, consolidate, snapshot)
"""The modules whose commands :data:`app` holds, in the order ``--help`` lists them."""

register_servers(app)  # serve, mcp, keys: their heavy imports wait until one runs


def main() -> None:
    """The ``engramdb`` console script (and ``python -m engramdb``)."""
    app(prog_name="engramdb")
