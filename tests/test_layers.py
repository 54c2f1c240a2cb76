"""The layer rules hold: no import circles; model/ and db/ import neither each other nor inspector/; nothing but the CLI imports
the CLI or typer; the pipeline never imports the app. The contracts live in pyproject.toml
([tool.importlinter]); import-linter reads every import, function-level ones too."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept(monkeypatch, capsys):
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "5 kept, 0 broken" in out


def test_the_app_starts_without_the_command_line():
    """Opening the app must not load typer and every subcommand (it did, through the CLI modules)."""
    code = "import sys, inspector.app.serve, inspector.app.overview; print('typer' in sys.modules, " \
           "any(m.startswith('inspector.cli') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split() == ["False", "False"], out
