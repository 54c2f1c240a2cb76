"""Give a trained FNet a class head, so it can learn to classify starting from what it knows.

Why in two steps: learning the classes and the redshift together from fresh weights, on a superset
half of which is stars, galaxies and empty spectra, cost the redshift of real quasars (bright low-z
quasars read as z 4.5-6), and a class head alone on the frozen quasar network's features was too
weak. So the network learns the quasars first and the classes after.

Why a twin: even that second stage moved the quasar redshifts when it shared the network. With
`twin=True` the class head sits in a copy of the quasar network that learns the classes and the
stars' and galaxies' own z, while the quasar network is frozen (`FNet.freeze_redshift`) and keeps
its redshifts exactly (`inspector.pipeline.shipped_model`). The measurements behind both choices are
in the README ("Why the twin", in "FNet, the baseline, and how well they do").
"""
from __future__ import annotations

from dataclasses import replace

import torch

from .classes import N_CLASSES
from .fnet import FNet


def with_class_head(model: FNet, seed: int = 0, twin: bool = False) -> FNet:
    """A copy of `model` with an untrained class head over `model.classes.CLASSES` (initialised from
    `seed`, leaving the caller's random state alone); all else the same.

    `twin`: the class head goes into a second network that starts as a copy of `model` (its
    features already know quasars), beside `model` itself, untouched.
    """
    head = {"class_head.weight", "class_head.bias"}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = FNet(replace(model.cfg, n_classes=N_CLASSES, class_net="twin" if twin else "shared"))
    state = model.state_dict()
    missing, unexpected = new.load_state_dict(state, strict=False)
    left = {k for k in missing if not k.startswith("twin.")} if twin else set(missing)
    if unexpected or left - head:
        raise ValueError(f"cannot add a class head: missing {missing}, unexpected {unexpected}")
    if twin:
        missing, unexpected = new.twin.load_state_dict(state, strict=False)
        if unexpected or set(missing) - head:
            raise ValueError(f"cannot start the twin from this model: missing {missing}, unexpected {unexpected}")
    new.provenance = dict(model.provenance)
    return new


__all__ = ["with_class_head"]
