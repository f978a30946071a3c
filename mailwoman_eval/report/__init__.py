"""Self-contained offline HTML reports (jinja2 templates + render).

`render.render_diagnose` writes the `mweval diagnose` report. The base layout and the macros in
`templates/` (provenance header, warnings banner, metric tables, stacked bar SVG, example rows)
are meant to be reused by the regression/compare report.
"""

from mailwoman_eval.report.render import render_diagnose

__all__ = ["render_diagnose"]
