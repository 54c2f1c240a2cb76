"""The `inspector ingest` subcommand."""
from __future__ import annotations

from inspector.cli import app  # noqa: F401
