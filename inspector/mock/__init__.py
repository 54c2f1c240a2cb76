"""The mock survey: realistic quasar, star and galaxy spectra in real SDSS formats, with a DR16Q-like catalog."""
from __future__ import annotations

from typing import Any

__all__ = ["make_survey", "make_arrays"]


def __getattr__(name: str) -> Any:
    # lazy, so `python -m inspector.mock.calibration` does not import itself twice
    if name in __all__:
        from inspector.mock import survey

        return getattr(survey, name)
    raise AttributeError(name)
