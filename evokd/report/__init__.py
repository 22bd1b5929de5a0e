"""`evokd report`: one self-contained HTML page about a run, plus its plots as PNG files.

The page embeds everything (plots as base64 PNG drawn with matplotlib's Agg renderer, inline CSS,
no script), so it opens offline and can be mailed as one file. It reads the run store read-only.

The work is split by job: `data` reads the run and computes what the page shows (the latest
student's scores, labels per round, whether hard examples were hard), `plots` draws the PNGs,
`page` renders the HTML, and `build` puts them together and writes the files.
"""

from __future__ import annotations

from evokd.report.build import REPORT_NAME, build_report
from evokd.report.data import RunData, hardness, label_counts, latest_student_eval, load_run, same
from evokd.report.page import render_html
from evokd.report.plots import Plot

__all__ = ["REPORT_NAME", "Plot", "RunData", "build_report", "hardness", "label_counts", "latest_student_eval",
           "load_run", "render_html", "same"]
