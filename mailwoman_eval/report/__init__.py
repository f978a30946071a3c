"""Self-contained offline HTML reports (jinja2 templates + one view-model module per page).

`diagnose_page.render_diagnose` writes the `mweval diagnose` report,
`compare_page.render_compare` the `mweval compare` one and `sweep_page.render_html` the `mweval sweep`
page; `common` holds what they share (the jinja2 environment, the display-only text mapping,
provenance, warnings, bars). The base layout and the macros in `templates/` (provenance header,
warnings banner, metric tables, stacked bar SVG, example rows) are shared by the pages.
"""

from mailwoman_eval.report.diagnose_page import render_diagnose

__all__ = ["render_diagnose"]
