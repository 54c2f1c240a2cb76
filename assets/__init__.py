"""The shipped data files, as the package `fnet_inspector_assets` (pyproject.toml maps it onto this directory).

A directory only travels in a wheel, and is only found by the import system, as a package;
this file makes `assets/` one without moving anything. Code asks `model.assets` where the
files are, never this package directly.
"""
