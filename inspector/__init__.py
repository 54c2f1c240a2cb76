"""FNet Inspector: read survey spectra, build a mock survey, triage and inspect them in a browser."""

__version__ = "0.1.0"
