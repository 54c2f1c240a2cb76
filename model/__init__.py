"""Everything numerical: the FNet grid, FNet and the baseline, training, prediction, metrics.

Never imports `inspector` or `db`, so it runs headless (scripts, notebooks, a cluster).
"""
