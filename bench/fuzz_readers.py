"""Fuzz the FITS readers for longer than CI does, and print the figures issue 15 asks for.

    python bench/fuzz_readers.py                    # seeds 0-4, 4 rounds each, real gzip cap, a 2 GiB gzip bomb
    python bench/fuzz_readers.py --seeds 20 --shared-real   # + damage to every file of ../shared/data/real
    python bench/fuzz_readers.py --json out.json    # also write every case's outcome

Same corpus families and harness as tests/store/test_readers_fuzz.py (tests/fits_fuzz.py): each
case is read by `read_any`/`read_catalog` and compared with astropy on the same bytes, under a
per-case time limit (SIGALRM) and an address-space cap of --memory-mb above the process's size.
Figures: cases, hangs, uncaught exceptions, memory blow-ups, disagreements with astropy (a value
rawfits decodes differently, or spectra that differ between the rawfits and astropy paths), garbage
accepted, plus what could not be verified (astropy cannot open that HDU), peak RSS and the largest
resident size one case adds. Targets: 0 hangs, 0 uncaught, 0 blow-ups, 0 disagreements, 0 garbage.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # the repo, not bench/ (bench/db.py would shadow db/)
sys.path.insert(1, str(REPO / "tests"))  # the fuzz corpus and harness

import numpy as np
from fits_fuzz import Case, corpus, flip_bits, hdu_spans, run_case, set_card, warm_up

FAILURES = ("hang", "uncaught", "memory", "disagree", "garbage")


def shared_real_cases(root: Path, seed: int) -> list[Case]:
    """Four kinds of damage to every spec file of the full real set (the issue's NAXIS2 = -50 among them)."""
    rng = np.random.default_rng(seed)
    out = []
    for path in sorted((root / "sdss").glob("spec-*.fits")):
        data = path.read_bytes()
        spans = hdu_spans(data)
        name = f"shared/{path.stem}"
        out.append(Case(f"{name}/HDU2:NAXIS2=-50", set_card(data, 2, "NAXIS2", "-50")))
        out.append(Case(f"{name}/truncate", data[: int(rng.integers(1, len(data)))]))
        out.append(Case(f"{name}/bitflip-header", flip_bits(data, rng, 3, 0, spans[-1][1])))
        key = ["NAXIS1", "NAXIS2", "PCOUNT", "TFIELDS", "XTRACOLS", "TSCAL1"][int(rng.integers(6))]
        changed = set_card(data, int(rng.integers(1, len(spans))), key, str(int(rng.integers(-(2**40), 2**40))))
        if changed is not None:
            out.append(Case(f"{name}/card-{key}", changed))
    return out


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(field + ":"))


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM, so each case's own peak RSS can be read."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _peak_rss() -> int:
    return _status("VmHWM")


def _rss_now() -> int:
    return _status("VmRSS")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="corpus seeds 0..N-1 (default 5)")
    ap.add_argument("--rounds", type=int, default=4, help="random draws per family and seed (default 4)")
    ap.add_argument("--bomb-gib", type=float, default=2.0, help="gzip bomb size, GiB (default 2)")
    ap.add_argument("--seconds", type=float, default=10.0, help="per-case time limit (default 10)")
    ap.add_argument("--memory-mb", type=int, default=1024, help="per-case address-space cap (default 1024)")
    ap.add_argument("--shared-real", action="store_true", help="also damage every file of ../shared/data/real")
    ap.add_argument("--json", type=Path, help="write every outcome here")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    cases: list[Case] = []
    for seed in range(args.seeds):
        cases += corpus(seed, args.rounds, bomb_bytes=int(args.bomb_gib * 2**30))
    if args.shared_real:
        root = Path(os.environ.get("FNET_REAL_DATA", REPO.parent / "shared" / "data" / "real"))  # as tests/conftest.py
        if not (root / "sdss").is_dir():
            ap.error(f"--shared-real: no {root}/sdss (set FNET_REAL_DATA)")
        cases += shared_real_cases(root, seed=0)
    seen: set[str] = set()  # the fixed families repeat with every seed: run each distinct file once
    unique = []
    for c in cases:
        key = hashlib.sha1(c.data + c.suffix.encode() + c.reader.encode()).hexdigest()
        if key not in seen:
            seen.add(key)
            unique.append(c)
    cases = unique
    built = time.perf_counter() - t0

    outcomes = []
    peak_case, peak_name, peak_run = 0, "", 0
    with tempfile.TemporaryDirectory(prefix="fnet-fuzz-") as tmp:
        warm_up(Path(tmp))
        t0 = time.perf_counter()
        base_rss = _rss_now()
        for case in cases:
            _reset_peak_rss()
            out = run_case(case, Path(tmp), seconds=args.seconds, extra_memory=args.memory_mb << 20)
            hwm = _peak_rss()
            peak, peak_run = hwm - base_rss, max(peak_run, hwm)
            if peak > peak_case:
                peak_case, peak_name = peak, case.name
            outcomes.append(out)
            if out.verdict in FAILURES:
                print(f"  {out.verdict:9s} {case.name}: {out.detail}", file=sys.stderr)
        ran = time.perf_counter() - t0

    verdicts = Counter(o.verdict for o in outcomes)
    unverified = sum(any(n.startswith("unverified") for n in o.notes) for o in outcomes)
    astropy_refused = sum(any("refused through astropy" in n for n in o.notes) for o in outcomes)
    seconds = np.array([o.seconds for o in outcomes])
    print(f"fuzz corpus: {len(cases)} cases ({args.seeds} seeds x {args.rounds} rounds"
          f"{', + shared real set' if args.shared_real else ''}; built in {built:.1f} s, run in {ran:.1f} s)")
    print(f"  read {verdicts['read']}, refused with a SpectrumFileError naming the file {verdicts['refused']}")
    for label, verdict in ((f"hangs (> {args.seconds:g} s)", "hang"), ("uncaught exceptions", "uncaught"),
                           (f"memory blow-ups (> {args.memory_mb} MB)", "memory"),
                           ("disagreements with astropy", "disagree"), ("garbage accepted", "garbage")):
        print(f"  {label:36s} {verdicts[verdict]}")
    print(f"  cases with an HDU astropy cannot open (unverified there): {unverified}; "
          f"read via rawfits but refused via astropy: {astropy_refused}")
    print(f"  per case: median {np.median(seconds) * 1e3:.0f} ms, max {seconds.max():.2f} s "
          f"({outcomes[int(seconds.argmax())].name})")
    print(f"  peak memory: {peak_run / 2**20:.0f} MB RSS for the whole run (before the first case "
          f"{base_rss / 2**20:.0f} MB: interpreter, astropy, pandas, the corpus); the hungriest case added "
          f"{peak_case / 2**20:.0f} MB to the process's resident size ({peak_name})")
    if args.json:
        args.json.write_text(json.dumps([o.__dict__ for o in outcomes], indent=1))
    return 1 if any(verdicts[v] for v in FAILURES) else 0


if __name__ == "__main__":
    raise SystemExit(main())
