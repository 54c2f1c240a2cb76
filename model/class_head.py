"""Give a trained FNet a class head, so it can learn to classify starting from what it knows.

Why in two steps: training the class head together with the redshift from fresh weights, on a
superset half of which is stars, galaxies and empty spectra whose redshifts the head also learned,
cost the redshift on real quasars: a small FNet trained that way read bright real low-z quasars
(S/N 15-50) as z 4.5-6, where one trained on the same mock's quasars alone did not. And a class
head fitted alone on the frozen quasar network's features was far too weak (84 % of the classes
right; a linear one 70 %). So the shipped recipe trains the network on the quasars first, then
adds this head and trains everything a few epochs more at a lower rate, with the class loss on
every spectrum and the redshift loss on the quasars only (`inspector.shipped_model`).
"""
from __future__ import annotations

from dataclasses import replace

import torch

from .classes import N_CLASSES
from .fnet import FNet


def with_class_head(model: FNet, seed: int = 0) -> FNet:
    """A copy of `model` with an untrained class head over `model.classes.CLASSES` (initialised from
    `seed`, leaving the caller's random state alone); all else the same."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = FNet(replace(model.cfg, n_classes=N_CLASSES))
    missing, unexpected = new.load_state_dict(model.state_dict(), strict=False)
    if unexpected or set(missing) - {"class_head.weight", "class_head.bias"}:
        raise ValueError(f"cannot add a class head: missing {missing}, unexpected {unexpected}")
    new.provenance = dict(model.provenance)
    return new


__all__ = ["with_class_head"]
