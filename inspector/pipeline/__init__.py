"""The use cases, one module each: what a command or the app asks for, free of typer and panel.

baseline (Z_QN for a store), predict (FNet + template fit over a store), template (the template-fit
cache), triage (rules + risk policy, loaded into the database), train / shipped_model (models),
retrain / retrain_job (a new model version from people's decisions), evaluate_* (accuracy tables),
catalog_rows (the catalog before and after decisions), demo (the README's first command).
"""
