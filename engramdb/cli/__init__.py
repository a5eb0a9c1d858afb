"""The command-line interface (HTTP and MCP faces sit beside it)."""
