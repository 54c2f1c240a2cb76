"""Where the shipped data files are: the one place every module asks.

The repository keeps them in the top-level `assets/` directory, which is not inside any Python
package, so a path built from a module's own `__file__` only works in a checkout. The wheel
therefore ships `assets/` as the package named by `ASSET_PACKAGE` (pyproject.toml maps that
package onto the directory), and an editable install maps the same name back onto the
checkout's `assets/`; either way the import system knows where it is. Only a checkout that
was never installed (`PYTHONPATH=.`) lacks the package: its `assets/` is then the directory
beside `model/`.

Looking the package up with `find_spec` (not importing `inspector`) keeps `model/` free of
`inspector/`, so the numerics and the app read the same files.
"""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

ASSET_PACKAGE = "fnet_inspector_assets"


def _locate() -> Path:
    spec = find_spec(ASSET_PACKAGE)
    if spec is not None and spec.origin:
        return Path(spec.origin).resolve().parent
    return Path(__file__).resolve().parents[1] / "assets"


ASSETS = _locate()
TEMPLATE_DIR = ASSETS / "templates"
LINE_DIR = ASSETS / "lines"
MODEL_DIR = ASSETS / "models"
DEMO_MODEL = MODEL_DIR / "fnet-small-mock.pt"
BASELINE_MODEL = MODEL_DIR / "quasarnet-mock.pt"  # the QuasarNET-style baseline: Z_QN where no catalog has one
