"""The Panel inspection app: spectrum plot, line markers, candidates, keyboard decisions.

Modules: `keymap` (the one key table), `item` (what one spectrum on screen
carries, read from the store and the database), `session` (the per-session
state and the decision functions the UI calls), `spectrum_plot` and
`chi2_plot` (Bokeh figures updated in place), `risk_view` (why a spectrum is
in the queue), `inspect_view` (the page), `overview_data` / `overview_plots` /
`overview` (the survey tab), `models_tab` (retraining), `serve` (one app per
browser session). The line table is `model.lines`.
"""
