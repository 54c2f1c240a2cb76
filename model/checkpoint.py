"""FNet checkpoints: one file format for a finished model and for a resumable training run.

A checkpoint is a `torch.save`d dict of plain Python values and tensors, so it
loads with `torch.load(weights_only=True)` (no pickled code runs). Keys:

    format          CHECKPOINT_FORMAT
    config          FNetConfig.to_dict()
    label_scaling   {"z_min", "z_max"} (also buffers in the state dict)
    state_dict      the model's weights and buffers
    metrics         final metrics (free-form, plain values)
    history         one dict per epoch (train_loss, val_acc@6000, ...)
    provenance      data hash, git revision, training arguments, versions, times
    extra           anything else the caller passes
    torch_version
    training        only in a training checkpoint: optimizer, scheduler, epoch,
                    RNG state, training arguments; what `train(..., resume=True)`
                    needs to continue exactly where it stopped

`load_checkpoint` reads either kind and returns the model; `model.provenance`
carries the provenance dict along so that predictions can cite it.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .fnet import FNet, FNetConfig

CHECKPOINT_FORMAT = "fnet-inspector/fnet-checkpoint/1"
REPO_DIR = Path(__file__).resolve().parent.parent


def plain(obj: Any) -> Any:
    """Numpy scalars / arrays, tuples and DataFrames -> Python builtins (for weights_only loading and JSON)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # pandas DataFrame
        return plain(obj.to_dict(orient="index"))
    return obj


_plain = plain  # the old private name


def data_hash(
    ids: Sequence[Any] | np.ndarray, z: Sequence[float] | np.ndarray, classes: np.ndarray | None = None
) -> str:
    """sha1 over the training rows' ids (as text, in order) and redshifts (float64 little-endian).

    The same spectra with the same labels in the same order give the same
    hash; a changed label, a new or dropped spectrum or a reordering changes it.
    """
    ids = [str(i) for i in (ids.tolist() if isinstance(ids, np.ndarray) else ids)]
    zz = np.asarray(z, dtype="<f8")
    if len(ids) != zz.size:
        raise ValueError(f"{len(ids)} ids for {zz.size} redshifts")
    h = hashlib.sha1()
    h.update(f"{len(ids)}\n".encode())
    h.update("\n".join(ids).encode())
    h.update(b"\0")
    h.update(zz.tobytes())
    if classes is not None:  # class labels count too; without them the hash is what it always was
        h.update(b"\0classes\0")
        h.update(np.asarray(classes, dtype="<i8").tobytes())
    return h.hexdigest()


def file_sha1(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def git_revision(repo: str | os.PathLike[str] = REPO_DIR) -> dict[str, Any]:
    """{"revision": HEAD's sha or None, "dirty": tracked files modified or None} of the code's checkout."""
    out: dict[str, Any] = {"revision": None, "dirty": None}
    try:
        r = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
        if r.returncode == 0:
            out["revision"] = r.stdout.strip()
            d = subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=10, check=False,
            )  # fmt: skip
            if d.returncode == 0:
                out["dirty"] = bool(d.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _atomic_save(obj: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def checkpoint_dict(
    model: FNet,
    metrics: dict[str, Any] | None = None,
    history: list[dict[str, float]] | None = None,
    extra: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    prov = dict(getattr(model, "provenance", None) or {})
    prov.update(provenance or {})
    return {
        "format": CHECKPOINT_FORMAT,
        "config": model.cfg.to_dict(),
        "label_scaling": {"z_min": float(model.z_min), "z_max": float(model.z_max)},
        "state_dict": state,
        "metrics": plain(metrics or {}),
        "history": plain(history or []),
        "provenance": plain(prov),
        "extra": plain(extra or {}),
        "torch_version": str(torch.__version__),
    }


def save_checkpoint(
    path: str | Path,
    model: FNet,
    metrics: dict[str, Any] | None = None,
    history: list[dict[str, float]] | None = None,
    extra: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write config, label scaling, weights, metrics, history and provenance to `path` (atomically).

    `provenance` is merged over `model.provenance`. `training` (optimizer /
    scheduler state, epoch, RNG, arguments) makes it a resumable training
    checkpoint; `train` writes those itself.
    """
    ckpt = checkpoint_dict(model, metrics, history, extra, provenance)
    if training is not None:
        ckpt["training"] = training
    return _atomic_save(ckpt, Path(path))


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict (weights_only=True), its format checked."""
    ckpt = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path}: not an FNet checkpoint (format {got!r})")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], source: str = "checkpoint") -> FNet:
    model = FNet(FNetConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    ls = ckpt["label_scaling"]
    if abs(float(model.z_min) - ls["z_min"]) > 1e-12 or abs(float(model.z_max) - ls["z_max"]) > 1e-12:
        raise ValueError(f"{source}: label scaling in the state dict disagrees with the metadata")
    model.provenance = dict(ckpt.get("provenance") or {})
    return model


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[FNet, dict[str, Any]]:
    """(model in eval mode, the checkpoint dict without state dict and training state); weights_only=True."""
    ckpt = read_checkpoint(path, map_location="cpu")
    model = model_from_checkpoint(ckpt, str(path))
    ckpt.pop("state_dict")
    ckpt.pop("training", None)
    model.to(map_location).eval()
    return model, ckpt


__all__ = [
    "CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "read_checkpoint", "model_from_checkpoint",
    "checkpoint_dict", "data_hash", "file_sha1", "git_revision", "plain",
]
