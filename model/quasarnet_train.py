"""Train the QuasarNET-style baseline, predict with it, save and load it.

Arrays are those of the spectrum store: N x 4618 float32 flux and ivar on the
FNet grid (numpy arrays or read-only memmaps), and N-long z / is_qso / bal
aligned with them; `rows` / `val_rows` select rows without copying.

Training first reduces the selected rows to the network input (443 float32
per spectrum, 1.8 kB, a tenth of one FNet-grid row), reading the arrays in
sorted chunks, then trains from memory: Adam (QuasarNET: Keras defaults,
lr 1e-3, batch 256), seeded shuffling. Each epoch the validation split is
decoded and scored: accuracy at |dv| < 6000/12000/30000 km/s over the
validation quasars (a failure, Z_QN = -1, counts as a miss), their failure
fraction, and the fraction of validation non-quasars that the model rejects.

Prediction streams: `iter_predict` reads, rebins and decodes one batch at a
time, so memory is flat in N.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .grid import QN_NBINS
from .metrics import accuracy_row
from .quasarnet import QuasarNet, QuasarNetConfig, decode, make_targets, quasarnet_input, quasarnet_loss

QN_CHECKPOINT_FORMAT = "fnet-inspector/quasarnet-checkpoint/1"
# forward passes at inference go 64 spectra at a time: on a CPU core that is ~30% faster than 256 (cache)
NET_BATCH = 64


def prepare_inputs(flux: np.ndarray, ivar: np.ndarray, rows: np.ndarray | None = None, chunk: int = 2048) -> np.ndarray:
    """Network inputs (len(rows) x 443 float32) for the given rows, in `rows` order; reads in sorted chunks."""
    rows = np.arange(flux.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    out = np.empty((rows.size, QN_NBINS), dtype=np.float32)
    order = np.argsort(rows, kind="stable")
    for i in range(0, rows.size, chunk):
        sel = order[i : i + chunk]
        r = rows[sel]
        out[sel] = quasarnet_input(np.asarray(flux[r]), np.asarray(ivar[r]))
    return out


def _to_torch(tgt: dict[str, np.ndarray], idx: np.ndarray, dev: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v[idx])).to(dev) for k, v in tgt.items()}


@torch.inference_mode()
def _outputs(model: QuasarNet, x: np.ndarray, batch_size: int, dev: torch.device) -> dict[str, np.ndarray]:
    was = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    try:
        for i in range(0, x.shape[0], batch_size):
            out = model(torch.from_numpy(x[i : i + batch_size]).to(dev))
            for k, v in out.items():
                parts.setdefault(k, []).append(v.float().cpu().numpy())
    finally:
        model.train(was)
    return {k: np.concatenate(v) for k, v in parts.items()}


def score(pred: pd.DataFrame, z_true: np.ndarray, is_qso: np.ndarray) -> dict[str, float]:
    """Accuracy (%) of z_qn on the quasars (failures count as misses), their failure fraction, non-QSO rejection."""
    q = np.asarray(is_qso, dtype=bool)
    zt = np.asarray(z_true, dtype=np.float64)
    rec: dict[str, float] = {"n_qso": int(q.sum()), "n_other": int((~q).sum())}
    if q.any():
        row = accuracy_row(pred["z_qn"].to_numpy()[q], zt[q])
        rec.update({k: v for k, v in row.items() if k != "n"})
        rec["failed_frac"] = float(pred["qn_failed"].to_numpy()[q].mean())
    if (~q).any():
        rec["other_rejected_frac"] = float(pred["qn_failed"].to_numpy()[~q].mean())
    return rec


def train_quasarnet(
    flux: np.ndarray,
    ivar: np.ndarray,
    z: np.ndarray,
    is_qso: np.ndarray,
    rows: np.ndarray | None = None,
    val_rows: np.ndarray | None = None,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    *,
    bal: np.ndarray | None = None,
    cfg: QuasarNetConfig | None = None,
    weight_decay: float = 0.0,
    device: str | torch.device | None = None,
    num_threads: int | None = None,
    progress: bool = True,
    model: QuasarNet | None = None,
) -> tuple[QuasarNet, list[dict[str, float]]]:
    """Train the baseline; returns (model in eval mode, history: one dict per epoch).

    z / is_qso / bal are aligned with the rows of flux (the store index
    columns z, is_qso, and e.g. BAL_PROB: 1 BAL, 0 not, -1 or NaN unknown).
    Quasars without a finite z are left out (no line to place). History
    entries: epoch, train_loss, seconds, and with `val_rows` val_loss,
    val_acc@6000/12000/30000 (%), val_median_abs_dv, val_failed_frac (of the
    validation quasars) and val_other_rejected_frac (non-quasars rejected).
    """
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    cfg = model.cfg if model is not None else (cfg or QuasarNetConfig())
    z = np.asarray(z, dtype=np.float64)
    is_qso = np.asarray(is_qso, dtype=bool)
    usable = ~(is_qso & ~np.isfinite(z))

    def _sel(r):
        r = np.arange(flux.shape[0]) if r is None else np.asarray(r, dtype=np.int64)
        return r[usable[r]]

    rows = _sel(rows)
    if rows.size == 0:
        raise ValueError("no training spectra")
    val = _sel(val_rows) if val_rows is not None else np.zeros(0, np.int64)

    torch.manual_seed(seed)
    if model is None:
        model = QuasarNet(cfg)
    model.to(dev)
    x_tr = prepare_inputs(flux, ivar, rows)
    t_tr = make_targets(z[rows], is_qso[rows], None if bal is None else np.asarray(bal)[rows], cfg)
    if val.size:
        x_va = prepare_inputs(flux, ivar, val)
        t_va = make_targets(z[val], is_qso[val], None if bal is None else np.asarray(bal)[val], cfg)

    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    n = rows.size
    n_batches = max(1, (n + batch_size - 1) // batch_size)
    history: list[dict[str, float]] = []
    bar = tqdm(total=epochs * n_batches, disable=not progress, unit="batch", dynamic_ncols=True)
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            t0 = time.perf_counter()
            perm = torch.randperm(n, generator=gen).numpy()
            total, count = 0.0, 0
            for b in range(n_batches):
                idx = perm[b * batch_size : (b + 1) * batch_size]
                if idx.size < 2:  # BatchNorm in train mode needs two samples
                    continue
                xb = torch.from_numpy(x_tr[idx]).to(dev)
                loss = quasarnet_loss(model(xb), _to_torch(t_tr, idx, dev))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * idx.size
                count += idx.size
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{total / count:.3g}", refresh=False)
            rec: dict[str, float] = {"epoch": epoch, "lr": lr, "train_loss": total / max(count, 1)}
            if val.size:
                out = _outputs(model, x_va, NET_BATCH, dev)
                with torch.no_grad():
                    rec["val_loss"] = float(
                        quasarnet_loss({k: torch.from_numpy(v) for k, v in out.items()},
                                       {k: torch.from_numpy(v) for k, v in t_va.items()})
                    )
                rec.update({f"val_{k}": v for k, v in score(decode(out, cfg), z[val], is_qso[val]).items()})
                post = {"epoch": epoch, "loss": f"{rec['train_loss']:.3g}"}
                if "val_acc@6000" in rec:
                    post["val_acc6000"] = f"{rec['val_acc@6000']:.1f}%"
                    post["val_failed"] = f"{100 * rec['val_failed_frac']:.1f}%"
                bar.set_postfix(post)
            rec["seconds"] = time.perf_counter() - t0
            history.append(rec)
    finally:
        bar.close()
    model.eval()
    return model, history


@torch.inference_mode()
def predict_quasarnet(model: QuasarNet, flux: np.ndarray, ivar: np.ndarray, batch_size: int = 512) -> pd.DataFrame:
    """Decoded predictions (see `quasarnet.decode`) for N FNet-grid spectra, in row order."""
    parts = [df for _, df in iter_predict(model, flux, ivar, batch_size=batch_size)]
    if not parts:
        nl, nb = model.cfg.n_lines, model.cfg.n_boxes
        empty = {"box": np.zeros((0, nl, nb)), "offset": np.zeros((0, nl, nb))}
        if model.cfg.bal_wave is not None:
            empty["bal"] = np.zeros((0, nb))
        return decode(empty, model.cfg)
    return pd.concat(parts, ignore_index=True)


def iter_predict(
    model: QuasarNet,
    flux: np.ndarray,
    ivar: np.ndarray,
    rows: np.ndarray | None = None,
    batch_size: int = 512,
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Yield (rows, predictions) batch by batch; memory is one batch whatever N is.

    `rows` (default all) should be sorted for sequential memmap reads.
    """
    flux = np.atleast_2d(flux) if isinstance(flux, np.ndarray) and flux.ndim == 1 else flux
    ivar = np.atleast_2d(ivar) if isinstance(ivar, np.ndarray) and ivar.ndim == 1 else ivar
    n = flux.shape[0]
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    dev = _device(model)
    for i in range(0, rows.size, batch_size):
        r = rows[i : i + batch_size]
        if r.size and r[-1] - r[0] == r.size - 1 and np.all(np.diff(r) == 1):
            f, iv = flux[r[0] : r[-1] + 1], ivar[r[0] : r[-1] + 1]  # a slice: one contiguous read
        else:
            f, iv = flux[r], ivar[r]
        x = quasarnet_input(np.asarray(f), np.asarray(iv))
        yield r, decode(_outputs(model, x, min(batch_size, NET_BATCH), dev), model.cfg)


def _device(model: QuasarNet) -> torch.device:
    return next(model.parameters()).device


def _plain(obj: Any) -> Any:
    """Numpy scalars / arrays -> Python builtins (for weights_only loading)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_quasarnet(
    path: str | Path,
    model: QuasarNet,
    metrics: dict[str, Any] | None = None,
    history: list[dict[str, float]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write config, state dict, metrics, history and extra to `path` (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "format": QN_CHECKPOINT_FORMAT,
        "config": model.cfg.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metrics": _plain(metrics or {}),
        "history": _plain(history or []),
        "extra": _plain(extra or {}),
        "torch_version": str(torch.__version__),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    return path


def load_quasarnet(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[QuasarNet, dict[str, Any]]:
    """(model in eval mode, the checkpoint dict without the state dict); loads with weights_only=True."""
    ckpt = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != QN_CHECKPOINT_FORMAT:
        fmt = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path}: not a QuasarNET-baseline checkpoint (format {fmt!r})")
    model = QuasarNet(QuasarNetConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt.pop("state_dict"))
    model.to(map_location).eval()
    return model, ckpt
