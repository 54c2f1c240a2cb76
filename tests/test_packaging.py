"""The wheel carries what the installed product opens: `pip install fnet_inspector-*.whl` must run the demo,
the mock, the template fit and the app's line markers without a checkout beside it."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from model.assets import ASSET_PACKAGE, ASSETS

REPO = Path(__file__).resolve().parents[1]
CODE_ROOTS = ("inspector", "model", "db")

# Runs in a fresh interpreter (the loaders cache what they read) and prints every file under the
# assets directory that the product's loaders open, relative to it.
RECORD_OPENS = """
import json, sys, tempfile
from pathlib import Path
from model.assets import ASSETS, DEMO_MODEL, MODEL_DIR
opened = set()
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, Path)):
        p = Path(args[0]).resolve()
        if p.is_relative_to(ASSETS):
            opened.add(p.relative_to(ASSETS).as_posix())
sys.addaudithook(hook)
from model.lines import line_table
from inspector.mock import make_survey
from model.quasarnet_train import load_quasarnet
from model.template_fit import load_templates
from model.train import load_checkpoint
line_table(); load_templates(); load_checkpoint(DEMO_MODEL); load_quasarnet(MODEL_DIR / "quasarnet-mock.pt")
with tempfile.TemporaryDirectory() as d:
    make_survey(d, 12, seed=3, workers=1, progress=False, population="superset")
print(json.dumps(sorted(opened)))
"""


def _pyproject() -> dict:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]


def test_every_code_package_is_listed_and_assets_map_to_model_assets():
    """The package list is written by hand (a find table cannot also map assets/): a new subpackage missing
    from it would be silently left out of the wheel."""
    cfg = _pyproject()
    found = {
        ".".join(d.relative_to(REPO).parts)
        for root in CODE_ROOTS
        for d in [REPO / root, *(REPO / root).rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
    }
    listed = set(cfg["packages"]) - {ASSET_PACKAGE}
    assert found - listed == set(), f"pyproject.toml [tool.setuptools] packages lacks {sorted(found - listed)}"
    assert listed - found == set(), f"pyproject.toml lists packages with no code: {sorted(listed - found)}"
    assert cfg["package-dir"][ASSET_PACKAGE] == "assets"
    assert ASSETS == REPO / "assets"


@pytest.mark.slow
def test_wheel_carries_every_asset_the_product_opens(tmp_path):
    opened = json.loads(subprocess.run([sys.executable, "-c", RECORD_OPENS], cwd=tmp_path, check=True,
                                       capture_output=True, text=True).stdout)
    # the recording itself works: each kind of asset the product reads shows up
    for part in ("models/", "templates/", "lines/", "mock_calibration.npz"):
        assert any(p.startswith(part) for p in opened), f"no {part} file recorded among {opened}"

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to copy the source tree")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split("\n")
    src = tmp_path / "src"
    for rel in filter(None, files):  # a clean copy: a stale build/ in the checkout could hide a missing file
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "whl"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "whl").glob("fnet_inspector-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix(f"{ASSET_PACKAGE}/") for n in names if n.startswith(f"{ASSET_PACKAGE}/")}

    assert set(opened) - shipped == set(), f"{wheel.name} lacks assets the product opens"
    licences = {p.relative_to(ASSETS).as_posix() for p in (ASSETS / "LICENSES").iterdir()}
    assert {"PROVENANCE.md", "__init__.py", *licences} <= shipped
    assert not any(n.endswith(".png") for n in shipped), "the README's pictures do not belong in the wheel"
    assert {"model/assets.py", "db/alembic.ini", "db/migrations/versions/0001_initial.py"} <= names
