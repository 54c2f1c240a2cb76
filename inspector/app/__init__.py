"""The Panel inspection app: spectrum plot, line markers, candidates, keyboard decisions.

Modules: `lines` (the one line table), `keymap` (the one key table), `item`
(what one spectrum on screen carries, read from the store and the database),
`triage` (the per-session state and the decision functions the UI calls),
`spectrum_plot` (Bokeh figures updated in place), `inspect_view` (the page),
`serve` (one app per browser session).
"""
