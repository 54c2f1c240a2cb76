"""One inspector's session: its state and the functions the UI calls (keys and buttons alike).

    t = InspectSession(engine=engine, store=store, inspector="alice")
    t.start()                 # leases the first spectrum
    t.dispatch("4"); t.dispatch("Enter")   # quality 4, accept: written, then the next one shows

Every decision goes through `db.decisions.record_decision` and is committed
before `item` changes, so what the inspector sees next is never ahead of the
database. Bad input (a z that is not a number or outside 0-7.5, a comment over
the database limit) sets `message` and writes nothing.
"""
from __future__ import annotations

import math
from typing import Any

import param

from db.decisions import record_decision
from db.engine import session_scope
from db.load import current_model
from db.queue import jump, next_after, next_item, previous_item, release
from db.validate import COMMENT_MAX, FLAGS, SPECTRAL_TYPES, Z_MAX, Z_MIN, DecisionError
from inspector.app import keymap
from inspector.app.item import Item, candidates, load_item

FINE, COARSE = 1e-4, 1e-2
SMOOTH_STEPS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0)
LEASE_SECONDS = 900


def parse_z(text: Any) -> float:
    """A redshift typed by a person; DecisionError (naming 'z') unless a finite number in [0, 7.5]."""
    try:
        z = float(str(text).strip())
    except ValueError:
        raise DecisionError("z", text, "must be a number") from None
    if not math.isfinite(z) or not (Z_MIN <= z <= Z_MAX):
        raise DecisionError("z", text, f"must be between {Z_MIN:g} and {Z_MAX:g}")
    return z


class InspectSession(param.Parameterized):
    inspector = param.String(default="")
    item = param.ClassSelector(class_=Item, default=None, allow_None=True)
    z = param.Number(default=0.0, doc="the current redshift, exact (never rounded by a widget)")
    quality = param.Integer(default=None, allow_None=True, bounds=(0, 4))
    flags = param.ListSelector(default=[], objects=[f.name for f in FLAGS])
    spectral_type = param.Selector(default="", objects=[""] + [t.name for t in SPECTRAL_TYPES])
    comment = param.String(default="")
    message = param.String(default="")
    candidate_index = param.Integer(default=0)
    smoothing = param.Number(default=0.0, bounds=(0, 20))
    rest = param.Boolean(default=False)
    major_only = param.Boolean(default=True)
    show_grid = param.Boolean(default=False)
    show_chi2 = param.Boolean(default=False, doc="the template fit's chi2(z) panel (fitted live, only while shown)")
    done = param.Boolean(default=False, doc="the queue has nothing left for this inspector")
    n_decided = param.Integer(default=0)
    crosscheck_fraction = param.Number(default=0.1, bounds=(0, 1), doc="share of picks that are deliberate "
                                       "cross-checks of another inspector's decision (db.queue.next_item)")

    def __init__(self, engine: Any, store: Any, **params: Any) -> None:
        super().__init__(**params)
        self.engine, self.store = engine, store
        with session_scope(engine) as s:
            mv = current_model(s)
            self.model_version_id = None if mv is None else mv.id

    # ------------------------------------------------------------------ showing
    def _show(self, spectrum: Any) -> None:
        if spectrum is None:
            self.done = True
            self.item = None
            self.message = "Nothing left in the queue for you. Thank you!"
            return
        with session_scope(self.engine) as s:
            it = load_item(s, self.store, spectrum, self.inspector, self.model_version_id)
        mine = it.mine or {}
        z0 = mine.get("z_final") if mine.get("z_final") is not None else it.z_fnet
        with param.parameterized.batch_call_watchers(self):
            self.done = False
            self.quality = mine.get("quality")
            self.flags = []
            self.spectral_type = ""
            self.comment = mine.get("comment") or ""
            self.candidate_index = 0
            self.z = float(z0) if z0 is not None else 0.0
            self.item = it

    def start(self) -> None:
        with session_scope(self.engine) as s:
            sp = next_item(s, self.inspector, lease_seconds=LEASE_SECONDS,
                           crosscheck_fraction=self.crosscheck_fraction)
            sid = None if sp is None else sp.id
        self._show(sid)

    def stop(self) -> None:
        """Give the lease back (a closed browser tab)."""
        with session_scope(self.engine) as s:
            release(s, self.inspector)

    # ------------------------------------------------------------------ navigation
    def next(self) -> None:
        if self.item is None:
            return self.start()
        with session_scope(self.engine) as s:
            sp = next_after(s, self.inspector, self.item.spectrum_id)
            if sp is None:
                sp = next_item(s, self.inspector, lease_seconds=LEASE_SECONDS,
                           crosscheck_fraction=self.crosscheck_fraction)
            sid = None if sp is None else sp.id
        if sid == self.item.spectrum_id:
            self.message = "Decide on this one (or skip it with s) to move on."
            return
        self._show(sid)

    def previous(self) -> None:
        with session_scope(self.engine) as s:
            sp = previous_item(s, self.inspector, None if self.item is None else self.item.spectrum_id)
            sid = None if sp is None else sp.id
        if sid is None:
            self.message = "This is the first spectrum you have seen."
            return
        self.message = ""
        self._show(sid)

    def jump(self, object_id: str) -> bool:
        """Show the spectrum with this object id (no lease taken: e.g. from the overview)."""
        with session_scope(self.engine) as s:
            sp = jump(s, str(object_id).strip())
            sid = None if sp is None else sp.id
        if sid is None:
            self.message = f"No spectrum {str(object_id)[:80]!r} in the database."
            return False
        self._show(sid)
        return True

    # ------------------------------------------------------------------ decisions
    def decide(self, action: str) -> bool:
        """Write one decision, then show the next spectrum; False (and a message) if refused."""
        it = self.item
        if it is None:
            self.message = "No spectrum on screen."
            return False
        if len(self.comment) > COMMENT_MAX:
            self.message = f"Comment too long ({len(self.comment)} characters, at most {COMMENT_MAX}); nothing saved."
            return False
        z_final = None
        if action == "correct":
            z_final = self.z
        elif action == "accept":
            z_final = it.z_fnet
        elif action in ("not_qso", "bad_spectrum", "skip"):
            z_final = None
        try:
            with session_scope(self.engine) as s:
                record_decision(
                    s, it.spectrum_id, self.inspector, action, z_final=z_final, quality=self.quality,
                    flags=list(self.flags), spectral_type=self.spectral_type or None, comment=self.comment or None,
                    model_version_id=self.model_version_id, z_model=it.z_fnet,
                )  # fmt: skip
        except DecisionError as e:
            self.message = f"Not saved: {e}"
            return False
        self.n_decided += 1
        self.message = f"Saved {action} for {it.object_id}."
        self.next()
        return True

    def accept(self) -> bool:
        return self.decide("accept")

    def correct(self) -> bool:
        return self.decide("correct")

    def not_qso(self) -> bool:
        return self.decide("not_qso")

    def bad_spectrum(self) -> bool:
        return self.decide("bad_spectrum")

    def skip(self) -> bool:
        return self.decide("skip")

    def set_quality(self, q: int) -> None:
        self.quality = int(q)

    def quality_0(self) -> None: self.set_quality(0)  # noqa: E704
    def quality_1(self) -> None: self.set_quality(1)  # noqa: E704
    def quality_2(self) -> None: self.set_quality(2)  # noqa: E704
    def quality_3(self) -> None: self.set_quality(3)  # noqa: E704
    def quality_4(self) -> None: self.set_quality(4)  # noqa: E704

    # ------------------------------------------------------------------ redshift
    def set_z_text(self, text: Any) -> bool:
        """A typed z: adopted if valid, else a message and z unchanged."""
        try:
            z = parse_z(text)
        except DecisionError as e:
            self.message = f"Not a usable z: {e}"
            return False
        self.message = ""  # first: the old complaint goes at once, not after the plot has been redrawn
        self.z = z
        return True

    def _nudge(self, dz: float) -> None:
        self.z = min(Z_MAX, max(Z_MIN, round(self.z + dz, 5)))

    def nudge_up_fine(self) -> None: self._nudge(FINE)  # noqa: E704
    def nudge_down_fine(self) -> None: self._nudge(-FINE)  # noqa: E704
    def nudge_up_coarse(self) -> None: self._nudge(COARSE)  # noqa: E704
    def nudge_down_coarse(self) -> None: self._nudge(-COARSE)  # noqa: E704

    def candidates(self) -> list[dict[str, Any]]:
        return [] if self.item is None else candidates(self.item, self.z)

    def adopt(self, index: int) -> None:
        usable = [c for c in self.candidates() if c["z"] is not None]
        if not usable:
            return
        self.candidate_index = index % len(usable)
        self.z = usable[self.candidate_index]["z"]

    def next_candidate(self) -> None:
        self.adopt(self.candidate_index + 1)

    def previous_candidate(self) -> None:
        self.adopt(self.candidate_index - 1)

    def reset_z(self) -> None:
        if self.item is not None and self.item.z_fnet is not None:
            self.candidate_index = 0
            self.z = self.item.z_fnet

    def z_from_feature(self, observed_wave: float, rest_wave: float) -> bool:
        """Clicking a feature at `observed_wave` and naming its line (`rest_wave`, vacuum) sets z."""
        return self.set_z_text(observed_wave / rest_wave - 1.0)

    # ------------------------------------------------------------------ view
    def smooth_more(self) -> None:
        bigger = [s for s in SMOOTH_STEPS if s > self.smoothing]
        self.smoothing = bigger[0] if bigger else self.smoothing

    def smooth_less(self) -> None:
        smaller = [s for s in SMOOTH_STEPS if s < self.smoothing]
        self.smoothing = smaller[-1] if smaller else 0.0

    def toggle_rest(self) -> None: self.rest = not self.rest  # noqa: E704
    def toggle_major(self) -> None: self.major_only = not self.major_only  # noqa: E704
    def toggle_grid(self) -> None: self.show_grid = not self.show_grid  # noqa: E704
    def toggle_chi2(self) -> None: self.show_chi2 = not self.show_chi2  # noqa: E704

    # ------------------------------------------------------------------ keys
    def dispatch(self, key: str) -> bool:
        """Run the action bound to `key` in `keymap.KEYMAP`; False for an unbound key or a refused decision."""
        action = keymap.action_for(key)
        if action is None:
            return False
        done = getattr(self, action)()
        return True if done is None else bool(done)
