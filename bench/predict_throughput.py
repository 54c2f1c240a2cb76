"""Prediction throughput over a spectrum store: spectra/s and peak memory.

    python bench/predict_throughput.py                           # 2000-spectrum mock store in a temp dir, small config
    python bench/predict_throughput.py --store demo/store --model assets/fnet-demo.pt
    python bench/predict_throughput.py --config paper --limit 256 # the published network on 256 spectra

Without --store, a mock survey of --n spectra is made (`inspector.mock.make_survey`)
and ingested (`inspector.ingest.ingest`) into a temporary directory first; the
prediction then runs in a fresh child process, so its peak RSS is the
prediction's own and not the ingest's.

What is timed: `model.predict.predict_store` (read a batch from the flux
memmap, normalise, run the network, decode), the same loop `inspector
predict` runs, over every row (or the first --limit rows), after one warm-up
batch. Model: --model CHECKPOINT, else an untrained FNet of --config (speed does
not depend on the weights). Peak RSS is the process high-water mark
(ru_maxrss: model, torch, one batch in flight, and the memmap pages touched,
which the kernel can drop at will).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_store(path: Path, n: int, seed: int, workers: int) -> Path:
    from inspector.ingest import ingest
    from inspector.mock import make_survey

    t0 = time.perf_counter()
    make_survey(path / "survey", n, seed=seed, workers=workers, progress=False)
    t1 = time.perf_counter()
    ingest([str(path / "survey")], path / "store", workers=workers, progress=False)
    print(f"mock store: {n} spectra made in {t1 - t0:.0f} s, ingested in {time.perf_counter() - t1:.0f} s -> {path / 'store'}")
    return path / "store"


def _predict_iter(model, flux, rows, batch):
    """Yields z per batch: `model.predict.predict_store` where it exists, else `model.train.predict` in chunks."""
    try:
        from model.predict import predict_store
    except ImportError:
        from model.train import predict

        for s in range(0, rows.size, batch):
            yield predict(model, flux[rows[s : s + batch]], batch_size=batch)
        return
    for b in predict_store(model, flux, rows, batch_size=batch):
        yield b.z


def run_prediction(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from inspector.store import open_store
    from model.fnet import FNet, FNetConfig, count_parameters

    torch.set_num_threads(args.threads)
    rss0 = _rss_mb()
    st = open_store(args.store)
    n = len(st) if not args.limit else min(args.limit, len(st))
    rows = np.arange(n, dtype=np.int64)
    if args.model:
        from model.train import load_checkpoint

        model, _ = load_checkpoint(args.model)
        what = f"checkpoint {args.model}"
    else:
        torch.manual_seed(0)
        cfg = FNetConfig.paper() if args.config == "paper" else FNetConfig.small()
        model = FNet(cfg).eval()
        what = f"untrained FNetConfig.{args.config}()"
    model.eval()
    print(
        f"store {args.store}: {len(st)} spectra ({st.flux.nbytes / 2**20:.0f} MiB of flux); predicting {n}; "
        f"model {what}, {count_parameters(model):,} parameters; batch {args.batch}; {args.threads} thread(s); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    # warm-up on one batch (FFT weight spectra, allocator), not timed
    for _ in _predict_iter(model, st.flux, rows[: min(args.batch, n)], args.batch):
        pass
    rss_ready = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    done = 0
    finite = 0
    for z in _predict_iter(model, st.flux, rows, args.batch):
        done += len(z)
        finite += int(np.isfinite(z).sum())
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    res = {
        "n": done, "seconds": dt, "spectra_per_s": done / dt, "ms_per_spectrum": 1000 * dt / done,
        "cpu_ms_per_spectrum": 1000 * cpu / done,
        "rss_start_mb": rss0, "rss_model_loaded_mb": rss_ready, "peak_rss_mb": _peak_mb(), "finite": finite,
    }  # fmt: skip
    print(
        f"predicted {done} spectra in {dt:.1f} s: {res['spectra_per_s']:.1f} spectra/s "
        f"({res['ms_per_spectrum']:.1f} ms/spectrum, {res['cpu_ms_per_spectrum']:.1f} CPU-ms/spectrum); RSS {rss0:.0f} MiB at start, {rss_ready:.0f} MiB after warm-up, "
        f"peak {res['peak_rss_mb']:.0f} MiB; load average {os.getloadavg()[0]:.1f}"
    )
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", type=Path, help="an existing store (default: make a mock one in a temp dir)")
    p.add_argument("--n", type=int, default=2000, help="mock spectra when no --store (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes for making and ingesting the mock")
    p.add_argument("--model", type=Path, help="FNet checkpoint (default: an untrained --config network)")
    p.add_argument("--config", choices=("small", "paper"), default="small")
    p.add_argument("--limit", type=int, default=0, help="predict only the first N rows (0: all)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep", action="store_true", help="keep the temporary mock store (its path is printed)")
    args = p.parse_args(argv)
    if args.store is not None:
        run_prediction(args)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="fnet-predict-bench-"))
    try:
        store = make_store(tmp, args.n, args.seed, args.workers)
        child = list(argv if argv is not None else sys.argv[1:])
        cmd = [sys.executable, str(Path(__file__).resolve()), "--store", str(store), *child]
        return subprocess.call(cmd)  # a fresh process: its peak RSS is the prediction's alone
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
