"""The wheel carries what the installed product opens: `pip install fnet_inspector-*.whl` must run the demo,
the mock, the template fit and the app's line markers without a checkout beside it."""
from __future__ import annotations

import json
import os
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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built from a clean copy of the checkout's files (a stale build/ in the checkout
    could hide a missing one)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to copy the source tree")
    tmp = tmp_path_factory.mktemp("wheel")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split("\n")
    src = tmp / "src"
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp / "whl"), str(src)], check=True, capture_output=True)
    (whl,) = (tmp / "whl").glob("fnet_inspector-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_carries_every_asset_the_product_opens(tmp_path, wheel):
    opened = json.loads(subprocess.run([sys.executable, "-c", RECORD_OPENS], cwd=tmp_path, check=True,
                                       capture_output=True, text=True).stdout)
    # the recording itself works: each kind of asset the product reads shows up
    for part in ("models/", "templates/", "lines/", "mock_calibration.npz"):
        assert any(p.startswith(part) for p in opened), f"no {part} file recorded among {opened}"

    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix(f"{ASSET_PACKAGE}/") for n in names if n.startswith(f"{ASSET_PACKAGE}/")}

    assert set(opened) - shipped == set(), f"{wheel.name} lacks assets the product opens"
    licences = {p.relative_to(ASSETS).as_posix() for p in (ASSETS / "LICENSES").iterdir()}
    assert {"PROVENANCE.md", "__init__.py", *licences} <= shipped
    assert not any(n.endswith(".png") for n in shipped), "the README's pictures do not belong in the wheel"
    assert {"model/assets.py", "db/alembic.ini", "db/migrations/versions/0001_initial.py"} <= names


@pytest.mark.slow
def test_the_installed_wheel_runs_the_demo_away_from_the_checkout(tmp_path, wheel):
    """`pip install fnet_inspector-*.whl` into a fresh venv, then `inspector demo --no-serve --n 50` in an
    empty directory: survey, store, predictions, triage and a SQLite database, with no checkout on the path.

    The venv gets its third-party packages (torch, panel, ...) by a path line to this interpreter's
    site-packages rather than a download; a path line does not run that directory's .pth files, so the
    checkout's editable install stays out of it and only the wheel provides inspector/, model/ and db/."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    ours = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    Path(purelib, "third_party.pth").write_text("\n".join(ours) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)  # fmt: skip
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([str(py), "-c", "import inspector, model.assets as a; print(inspector.__file__); "
                            "print(a.ASSETS)"], cwd=work, env=env, check=True, capture_output=True, text=True)
    for line in where.stdout.split():
        assert Path(line).is_relative_to(venv), f"{line} is not the installed copy"
    r = subprocess.run([str(venv / "bin" / "inspector"), "demo", "--no-serve", "--n", "50", "--dir", "demo"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (work / "demo" / "fnet_inspector.sqlite").stat().st_size > 0
    assert any((work / "demo" / "store" / "predictions").glob("*.parquet"))
    assert "50 spectra" in r.stdout, r.stdout[-2000:]
