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
import re
from typing import Any

import param

from db.decisions import record_decision
from db.engine import session_scope
from db.load import current_model
from db.queue import DEFAULT_ORDER, ORDERS, jump, next_after, next_item, previous_item, release
from db.settings import SETTINGS, load_settings, save_settings
from db.validate import COMMENT_MAX, FLAGS, NOT_QSO_TYPES, QSO_TYPES, SPECTRAL_TYPES, Z_MAX, DecisionError, z_range
from inspector.app import keymap
from inspector.app.desk import estimators_consensus, feature_lines, person_words, refine_click
from inspector.app.item import SAME_Z_KMS, Item, candidates, dv_kms, load_item

FINE, COARSE = 1e-4, 1e-2
SMOOTH_STEPS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0)
LEASE_SECONDS = 900
# the session's parameters kept per inspector across reloads: those named in db.settings.SETTINGS
KEPT = ("smoothing", "rest", "major_only", "show_grid", "show_chi2", "show_model", "show_sky", "queue_order",
        "quality_submits")
assert set(KEPT) <= set(SETTINGS), "a kept setting missing from db.settings.SETTINGS"


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # what a person types; not Python's "0_5"


def parse_z(text: Any, spectral_type: str | None = None) -> float:
    """A redshift typed by a person; DecisionError (naming 'z') unless a plain decimal number in the range of
    the spectral type being recorded (`db.validate.z_range`: negative only for a star or a galaxy)."""
    s = str(text).strip()
    if not _NUMBER.fullmatch(s):
        raise DecisionError("z", text, "must be a number such as 2.345")
    z = float(s)
    lo, hi = z_range(spectral_type)
    if not math.isfinite(z) or not (lo <= z <= hi):
        kind = f" for a {spectral_type}" if spectral_type else " (negative only for a STAR or GALAXY type)"
        raise DecisionError("z", text, f"must be between {lo:g} and {hi:g}{kind}")
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
    show_model = param.Boolean(default=True, doc="the best-fit template model at the current z over the data")
    show_sky = param.Boolean(default=True)
    zoom_level = param.Integer(default=0, doc="the zoom panel's width is its default / ZOOM_STEP ** zoom_level")
    quality_submits = param.Boolean(default=False, doc="a quality key also saves (Marz's habit): `submit`")
    queue_order = param.Selector(default=DEFAULT_ORDER, objects=list(ORDERS), doc="the order the queue is taken in")
    message_level = param.Selector(default="info", objects=["info", "error"])
    picking = param.Boolean(default=False, doc="after `j`: the next digit picks a candidate row, not a quality")
    feature_wave = param.Number(default=None, allow_None=True, doc="a clicked feature's observed λ (Å), refined")
    feature_err = param.Number(default=None, allow_None=True, doc="its 1-sigma error (Å); None: the raw click")
    line_name = param.String(default="", doc="the line the clicked feature is called (a key of `feature_lines`)")
    focus = param.Event(doc="the comment box should take the keyboard (the view's browser side does it)")
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
        self.param.watch(self._fixed, ["quality", "spectral_type", "flags", "z", "comment"])
        self._restore_settings()
        self.param.watch(self._not_picking, ["spectral_type", "flags", "z", "comment", "item"])

    # ------------------------------------------------------------------ what the person set, kept
    def _restore_settings(self) -> None:
        """The view settings this inspector chose last time (db.settings), then every later change saved."""
        with session_scope(self.engine) as s:
            saved = load_settings(s, self.inspector) if self.inspector else {}
        with param.parameterized.batch_call_watchers(self):
            for key in KEPT:  # what the person changed from the defaults (the defaults leave given params alone)
                if key in saved and saved[key] != SETTINGS[key].default:
                    setattr(self, key, saved[key])
        self.param.watch(self._keep_setting, list(KEPT))

    def _keep_setting(self, *events: Any) -> None:
        try:
            with session_scope(self.engine) as s:
                save_settings(s, self.inspector, {e.name: e.new for e in events})
        except DecisionError as e:  # a value the table refuses: the view still changes, nothing stored
            self.say(f"Setting not kept: {e}", "error")

    # ------------------------------------------------------------------ messages
    def say(self, text: str, level: str = "info") -> None:
        """A message beside the controls: `error` ones say what to do, in the inspector's words."""
        self.message_level = level
        self.message = text

    def _not_picking(self, *_: Any) -> None:
        """A digit is a candidate's row only right after `a`: anything else done meanwhile makes it a quality."""
        self.picking = False

    def _fixed(self, *_: Any) -> None:
        """A complaint goes as soon as the person changes what it was about."""
        if self.message_level == "error" and self.message:
            self.say("")

    # ------------------------------------------------------------------ showing
    def _show(self, spectrum: Any) -> None:
        if spectrum is None:
            self.done = True
            self.item = None
            self.say("Nothing left in the queue for you. Thank you!")
            return
        with session_scope(self.engine) as s:
            it = load_item(s, self.store, spectrum, self.inspector, self.model_version_id)
        mine = it.mine or {}
        z0 = mine.get("z_final") if mine.get("z_final") is not None else it.z_fnet
        with param.parameterized.batch_call_watchers(self):
            self.done = False
            self.quality = mine.get("quality")
            self.flags = [f.name for f in FLAGS if (mine.get("flags") or 0) & f.bit]
            self.spectral_type = mine.get("spectral_type") or ""
            self.comment = mine.get("comment") or ""
            self.candidate_index = 0
            self.picking = False
            self.feature_wave = self.feature_err = None
            self.line_name = ""
            self.z = float(z0) if z0 is not None else 0.0
            self.item = it

    def start(self) -> None:
        with session_scope(self.engine) as s:
            sp = next_item(s, self.inspector, lease_seconds=LEASE_SECONDS,
                           crosscheck_fraction=self.crosscheck_fraction, order=self.queue_order)
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
            # forward through what this inspector decided before, if the one on screen was among it (one
            # they had not decided is, once decided, their newest: nothing comes after it)
            revisiting = self.item.mine is not None
            sp = next_after(s, self.inspector, self.item.spectrum_id) if revisiting else None
            if sp is None:
                sp = next_item(s, self.inspector, lease_seconds=LEASE_SECONDS,
                           crosscheck_fraction=self.crosscheck_fraction, order=self.queue_order)
            sid = None if sp is None else sp.id
        if sid == self.item.spectrum_id:
            self.say("Decide on this one (or skip it with s) to move on.", "error")
            return
        self._show(sid)

    def previous(self) -> None:
        with session_scope(self.engine) as s:
            sp = previous_item(s, self.inspector, None if self.item is None else self.item.spectrum_id)
            sid = None if sp is None else sp.id
        if sid is None:
            self.say("This is the first spectrum you have seen.", "error")
            return
        self.say("")
        self._show(sid)

    def jump(self, object_id: str) -> bool:
        """Show the spectrum with this object id (no lease taken: e.g. from the overview)."""
        with session_scope(self.engine) as s:
            sp = jump(s, str(object_id).strip())
            sid = None if sp is None else sp.id
        if sid is None:
            self.say(f"No spectrum {str(object_id)[:80]!r} in the database.", "error")
            return False
        self._show(sid)
        return True

    # ------------------------------------------------------------------ decisions
    def decide(self, action: str) -> bool:
        """Write one decision, then show the next spectrum; False (and a message) if refused."""
        it = self.item
        if it is None:
            self.say("No spectrum on screen.", "error")
            return False
        if len(self.comment) > COMMENT_MAX:
            self.say(f"The comment is {len(self.comment)} characters long; shorten it to {COMMENT_MAX} and save "
                     "again (nothing was saved).", "error")
            return False
        z_final = None
        if action == "correct":
            z_final = self.z
        elif action == "accept":
            z_final = it.z_fnet
        elif action == "not_qso" and self.spectral_type in NOT_QSO_TYPES:
            z_final = self.z  # a star or galaxy keeps the z on screen (a template's, a typed one)
        try:
            with session_scope(self.engine) as s:
                record_decision(
                    s, it.spectrum_id, self.inspector, action, z_final=z_final, quality=self.quality,
                    flags=list(self.flags), spectral_type=self.spectral_type or None, comment=self.comment or None,
                    model_version_id=self.model_version_id, z_model=it.z_fnet,
                )  # fmt: skip
        except DecisionError as e:
            self.say(person_words(e, action, self.spectral_type), "error")
            return False
        self.n_decided += 1
        self.say(f"Saved {action.replace('_', ' ')} for {it.object_id}.")
        self.next()
        return True

    def submit(self) -> bool:
        """Save with what is on screen, as Marz's quality keys do: quality 0 a bad spectrum; a STAR, GALAXY
        or UNKNOWN type not a quasar; FNet's z an accept; any other z a correction."""
        it = self.item
        if it is None:
            return False
        if self.quality == 0:
            return self.decide("bad_spectrum")
        if self.spectral_type and self.spectral_type not in QSO_TYPES:
            return self.decide("not_qso")
        on_fnet = it.z_fnet is not None and abs(dv_kms(self.z, it.z_fnet)) < SAME_Z_KMS
        return self.decide("accept" if on_fnet else "correct")

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

    def set_quality(self, q: int) -> bool | None:
        self.quality = int(q)
        return self.submit() if self.quality_submits else None

    def set_type(self, name: str) -> None:
        """The spectral type to record (pressing the same type again clears it: the action's default)."""
        self.spectral_type = "" if self.spectral_type == name else name

    def toggle_flag(self, name: str) -> None:
        self.flags = [f for f in self.flags if f != name] if name in self.flags else [*self.flags, name]

    def focus_comment(self) -> None:
        self.param.trigger("focus")

    def quality_0(self) -> bool | None: return self.set_quality(0)  # noqa: E704
    def quality_1(self) -> bool | None: return self.set_quality(1)  # noqa: E704
    def quality_2(self) -> bool | None: return self.set_quality(2)  # noqa: E704
    def quality_3(self) -> bool | None: return self.set_quality(3)  # noqa: E704
    def quality_4(self) -> bool | None: return self.set_quality(4)  # noqa: E704

    # ------------------------------------------------------------------ redshift
    def set_z_text(self, text: Any) -> bool:
        """A typed z: adopted if valid, else a message and z unchanged."""
        try:
            z = parse_z(text, self.spectral_type or None)
        except DecisionError as e:
            self.say(person_words(e, "correct", self.spectral_type), "error")
            return False
        self.say("")  # first: the old complaint goes at once, not after the plot has been redrawn
        self.z = z
        return True

    def _nudge(self, dz: float) -> None:
        lo = z_range(self.spectral_type or None)[0]  # below 0 only for a star or a galaxy
        self.z = min(Z_MAX, max(lo, round(self.z + dz, 5)))

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

    def pick_candidate(self) -> None:
        """`j`: the next digit picks a candidate by its row number instead of setting the quality."""
        self.picking = True
        self.say("Which candidate? Its row number, 1-9 (0 the tenth).")

    def adopt_consensus(self) -> bool:
        z = estimators_consensus(self.item) if self.item is not None else None
        if z is None:
            self.say("No two estimators agree within 3000 km/s: no consensus to adopt.", "error")
            return False
        self.z = z
        return True

    def previous_candidate(self) -> None:
        self.adopt(self.candidate_index - 1)

    def reset_z(self) -> None:
        if self.item is not None and self.item.z_fnet is not None:
            self.candidate_index = 0
            self.z = self.item.z_fnet

    def z_from_feature(self, observed_wave: float, rest_wave: float) -> bool:
        """Clicking a feature at `observed_wave` and naming its line (`rest_wave`, vacuum) sets z."""
        return self.set_z_text(observed_wave / rest_wave - 1.0)

    def click_feature(self, observed_wave: float) -> None:
        """A click on the spectrum: the feature's centre fitted near it (Marz), kept for naming its line."""
        self.feature_wave, self.feature_err = refine_click(self.item, observed_wave)
        self.line_name = ""

    def call_line(self, name: str) -> bool:
        """Name the clicked feature's line (a key of `feature_lines`): z follows."""
        waves = feature_lines()
        if self.feature_wave is None or name not in waves:
            self.line_name = ""
            return False
        self.line_name = name
        return self.z_from_feature(self.feature_wave, waves[name])

    def _step_line(self, step: int) -> None:
        if self.feature_wave is None:
            self.say("Click a feature in the spectrum first, then l / Shift+l name its line.", "error")
            return
        names = [n for n, w in feature_lines().items() if 0 <= self.feature_wave / w - 1 <= Z_MAX]
        if not names:
            return
        i = names.index(self.line_name) + step if self.line_name in names else (0 if step > 0 else -1)
        self.call_line(names[i % len(names)])

    def next_line(self) -> None: self._step_line(1)  # noqa: E704
    def previous_line(self) -> None: self._step_line(-1)  # noqa: E704

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
    def toggle_model(self) -> None: self.show_model = not self.show_model  # noqa: E704
    def toggle_sky(self) -> None: self.show_sky = not self.show_sky  # noqa: E704
    def zoom_in(self) -> None: self.zoom_level = min(self.zoom_level + 1, 6)  # noqa: E704
    def zoom_out(self) -> None: self.zoom_level = max(self.zoom_level - 1, -6)  # noqa: E704

    # ------------------------------------------------------------------ keys
    def dispatch(self, key: str) -> bool:
        """Run the action bound to `key` in `keymap.KEYMAP`; False for an unbound key or a refused decision.
        Right after `j` a digit picks that candidate row (1-9, 0 the tenth) rather than a quality."""
        if self.picking and key in keymap.DIGITS:
            self.picking = False
            usable = [c for c in self.candidates() if c["z"] is not None]
            row = keymap.DIGITS.index(key)
            if row >= len(usable):
                self.say(f"There is no candidate {key}: {len(usable)} have a z.", "error")
                return False
            self.say("")
            self.adopt(row)
            return True
        b = keymap.binding_for(key)
        if b is None:
            return False
        if b.action != "pick_candidate":
            self.picking = False
        done = getattr(self, b.action)() if b.arg is None else getattr(self, b.action)(b.arg)
        return True if done is None else bool(done)
