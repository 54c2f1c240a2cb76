"""The mock survey: realistic quasar, star and galaxy spectra in real SDSS formats, with a DR16Q-like catalog."""
from inspector.mock.survey import make_arrays, make_survey

__all__ = ["make_survey", "make_arrays"]
