"""FNet speed on this CPU: paper-config inference with the FFT path vs plain nn.Conv1d, and a training step.

    python bench/fnet_speed.py                       # 1 and 2 threads, batch 16, both paths (~2 min on 2 cores)
    python bench/fnet_speed.py --threads 2 --reps 3
    python bench/fnet_speed.py --skip-direct         # FFT path only (seconds)
    python bench/fnet_speed.py --device cuda         # the same on a GPU (direct = cuDNN)

Inference: the published network (`FNetConfig.paper()`, 10.17 M parameters,
58.5 GFLOP per spectrum done directly) in eval mode under
`torch.inference_mode`, one warm-up batch (which also caches the FFT'd
weights), then the best of --reps timed batches; the same model, weights and
input for both paths (`FNet.set_conv_impl`), and the largest relative
difference between the two outputs is printed as a check.

Training: `FNetConfig.small()` (the CPU-trainable variant), batch 64, one full
step (forward, MSE, backward, gradient clipping, Adam), "auto" conv path; the
median of --train-steps steps after one warm-up step, in ms per spectrum per
step.

The issue's targets: FFT >= 10x faster than nn.Conv1d; >= 20 spectra/s on 2 cores.
The machine may be shared: the 1-minute load average is printed beside the
figures, and a load above the core count means the wall-clock figures are
pessimistic; "spectra per CPU-second" (process CPU time) is what one busy core
delivers, and at 1 thread it is the rate the machine gives when idle.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
from torch import nn

from model.fnet import FNet, FNetConfig, count_parameters
from model.grid import FNET_NPIX


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _timed(f, dev: torch.device) -> float:
    return _timed_cpu(f, dev)[0]


def _timed_cpu(f, dev: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of f(); on a shared machine CPU / threads ~ the wall time it would take alone."""
    _sync(dev)
    t, c = time.perf_counter(), time.process_time()
    f()
    _sync(dev)
    return time.perf_counter() - t, time.process_time() - c


def inference(batch: int, threads: list[int], reps: int, skip_direct: bool, dev: torch.device) -> list[dict]:
    """Spectra/s of the paper config per (threads, conv path)."""
    torch.manual_seed(0)
    model = FNet(FNetConfig.paper()).eval().to(dev)
    x = torch.rand(batch, 1, FNET_NPIX, device=dev)
    print(f"paper FNet: {count_parameters(model):,} parameters; batch {batch}; device {dev}")
    rows = []
    for nt in threads if dev.type == "cpu" else [torch.get_num_threads()]:
        torch.set_num_threads(nt)
        outs = {}
        for impl in ("fft", "direct") if not skip_direct else ("fft",):
            model.set_conv_impl(impl)
            with torch.inference_mode():
                outs[impl] = model(x).float().cpu()  # warm-up; FFT weight spectra cached here
                best, cpu = min(_timed_cpu(lambda: model(x), dev) for _ in range(reps))
            rate = batch / best
            rows.append({"threads": nt, "impl": impl, "s_per_batch": best, "spectra_per_s": rate, "cpu_s": cpu})
            print(
                f"  {nt} thread(s)  {impl:6s}  {best:8.3f} s/batch  {rate:8.2f} spectra/s  "
                f"{1000 * best / batch:8.1f} ms/spectrum  ({batch / cpu:.2f} spectra per CPU-second; "
                f"load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        if "direct" in outs:
            a, b = outs["fft"], outs["direct"]
            rel = float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
            fft = next(r for r in rows if r["threads"] == nt and r["impl"] == "fft")
            direct = next(r for r in rows if r["threads"] == nt and r["impl"] == "direct")
            print(
                f"  {nt} thread(s)  FFT / nn.Conv1d speed-up: {fft['spectra_per_s'] / direct['spectra_per_s']:.1f}x"
                f"  (max |out_fft - out_direct| / max |out| = {rel:.1e})"
            )
    return rows


def train_step(batch: int, steps: int, threads: int, dev: torch.device, cfg: FNetConfig | None = None) -> float:
    """Median ms per spectrum of one full training step (small config unless `cfg`)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = cfg or FNetConfig.small()
    model = FNet(cfg).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=2.4e-4, weight_decay=1e-5)
    x = torch.rand(batch, 1, cfg.n_pix, device=dev)
    z = torch.rand(batch, device=dev, dtype=torch.float64) * 4.0
    model.set_label_scaling(0.0, 4.0)
    # the model's own loss where it has one (MSE for the regression head, cross-entropy for a bins head)
    loss_fn = getattr(model, "loss", None) or (lambda out, zz: nn.functional.mse_loss(out, model.scale_z(zz)))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), z)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()  # warm-up
    timed = [_timed_cpu(step, dev) for _ in range(steps)]
    wall = statistics.median(t for t, _ in timed)
    cpu = statistics.median(c for _, c in timed)
    ms = 1000 * wall / batch
    print(
        f"training step, FNetConfig.small() ({count_parameters(model):,} parameters, "
        f"{getattr(cfg, 'output', 'regression')} head), batch {batch}, {threads} thread(s): "
        f"{ms:.2f} ms per spectrum per step ({wall:.2f} s per step; {1000 * cpu / batch:.2f} CPU-ms per spectrum; "
        f"load {os.getloadavg()[0]:.1f})"
    )
    return ms


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=16, help="inference batch (default 16)")
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (default 1,2)")
    p.add_argument("--reps", type=int, default=1, help="timed inference batches per setting; the best counts")
    p.add_argument("--skip-direct", action="store_true", help="time only the FFT path")
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--train-steps", type=int, default=3)
    p.add_argument("--train-threads", type=int, default=1)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-inference", action="store_true")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    dev = torch.device(args.device)
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    print(
        f"torch {torch.__version__}; {platform.processor() or platform.machine()}; "
        f"{os.cpu_count()} logical CPUs; load average {os.getloadavg()[0]:.1f}"
    )
    if not args.skip_inference:
        inference(args.batch, threads, max(1, args.reps), args.skip_direct, dev)
    if not args.skip_train:
        train_step(args.train_batch, max(1, args.train_steps), args.train_threads, dev)
    return 0


if __name__ == "__main__":
    sys.exit(main())
