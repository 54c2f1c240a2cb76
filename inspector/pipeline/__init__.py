"""The use cases, one module each: what a command or the app asks for, free of typer and panel.

baseline (Z_QN for a store), predict (FNet + template fit over a store), template (the template-fit
cache), triage (rules + risk policy, loaded into the database), train / shipped_model (models),
retrain / retrain_job (a new model version from people's decisions), promote (making a version current,
with one switch at the end), evaluate_* (accuracy tables),
catalog_rows (the catalog before and after decisions), demo (the README's first command).

Imports sit at module top, except torch, scikit-learn / joblib and matplotlib (and the model modules that
pull them in), which load inside the function that needs them: each costs about as much as the whole
of `inspector --help` (`python bench/startup.py`), which the CLI and the app's start would pay for
nothing.
"""
