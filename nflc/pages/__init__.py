"""Self-contained HTML pages of nflc's results (``--html``): analyze, report, rank.

Each page is one file with plotly.js, its script and its data inlined (it opens offline):
interactive Fig. 3/4 panels, scatter plots, sortable and filterable tables, and the
drawing (:mod:`nflc.drawing`) of the architecture a reader clicks. Pages are built from
the plain results the commands already produce.
"""

from nflc.pages.document import MAX_ROWS, Page, check_html_target, render, write
from nflc.pages.figures import MAX_POINTS

__all__ = ["MAX_POINTS", "MAX_ROWS", "Page", "check_html_target", "render", "write"]
