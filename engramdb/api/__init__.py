"""The faces over the engine: the command-line interface (and, later, HTTP and MCP)."""
