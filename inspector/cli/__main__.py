"""`python -m inspector.cli ...`, the same as the `inspector` command."""
from inspector.cli import app

app()
