"""Give a trained FNet a class head, so it can learn to classify starting from what it knows.

Why in two steps: training the class head together with the redshift from fresh weights, on a
superset half of which is stars, galaxies and empty spectra whose redshifts the head also learned,
cost the redshift on real quasars: a small FNet trained that way read bright real low-z quasars
(S/N 15-50) as z 4.5-6, where one trained on the same mock's quasars alone did not. And a class
head fitted alone on the frozen quasar network's features was far too weak (84 % of the classes
right; a linear one 70 %). So the shipped recipe trains the network on the quasars first, then
adds this head and trains everything a few epochs more at a lower rate, with the class loss on
every spectrum and the redshift loss on the quasars only.

That second stage still moved the redshifts: on the real quasars a network fine-tuned with its class
head scored 2-3 points below the quasar network it started from (95.8 -> 92.4 % with stars' and
galaxies' z at weight 0.3), and on DR16Q-like mock S/N 96.1 -> 93.7 %. So the class head can also
sit in a twin (`twin=True`): a copy of the quasar network that learns the classes and the stars' and
galaxies' own z, while the quasar network is frozen (`FNet.freeze_redshift`) and keeps its figures
exactly (`inspector.pipeline.shipped_model`).
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
