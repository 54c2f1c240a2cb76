"""Start-up costs that decide where imports sit: `inspector --help`, and the three heavy libraries.

    python bench/startup.py            # best of 3 fresh interpreters each (~20 s)
    python bench/startup.py --reps 5

The CLI imports its work inside each command and the pipeline loads torch, scikit-learn / joblib and
matplotlib inside the functions that need them (`inspector/cli/__init__.py`,
`inspector/pipeline/__init__.py`); these figures are the reason, so they are measured in fresh
processes, as a user meets them, and printed beside the machine's load.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "inspector --help": [sys.executable, "-m", "inspector.cli", "--help"],
    "import inspector.app.serve": [sys.executable, "-c", "import inspector.app.serve"],
    "import torch": [sys.executable, "-c", "import torch"],
    "import sklearn.ensemble + joblib": [sys.executable, "-c", "import sklearn.ensemble, joblib"],
    "import matplotlib.pyplot": [sys.executable, "-c", "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot"],
}


def best_time(cmd: list[str], reps: int) -> float:
    """Best wall time of `reps` fresh processes: the start-up a user pays with warm disk caches."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; best of {args.reps}")
    for name, cmd in CASES.items():
        print(f"{name:36s} {best_time(cmd, args.reps):6.2f} s")


if __name__ == "__main__":
    main()
