"""The static report site: ``mucomp report`` and the Screen page's "Download report" (torch-free:
it reads stored results only).

- :mod:`mucomp.report.plan`: which scenarios, experiments and pairs a report shows.
- :mod:`mucomp.report.figures`: the pages' own figure builders on the pages' own data, as records
  for a static site (templates once per site, numbers rounded, stored text escaped for plotly).
- :mod:`mucomp.report.pages`: the HTML pages (every stored string escaped).
- :mod:`mucomp.report.assets`: the site's small style sheet and script (sorting, filtering,
  drawing), no library but the installed plotly's JavaScript.
- :mod:`mucomp.report.site`: writing the folder (and the zip the Screen page offers).

The report sits with the front ends (README, "Architecture"): it draws with :mod:`mucomp.ui`'s
figure builders and reads :mod:`mucomp.results`, both above the sharing layer.
"""

from mucomp.report.plan import Pair, ReportPlan, ReportSelectionError, ScenarioPlan, parse_pairs, plan_report
from mucomp.report.site import DEFAULT_EMBEDDINGS, ReportError, ReportSummary, report_zip, write_report, zip_folder

__all__ = [
    "DEFAULT_EMBEDDINGS", "Pair", "ReportError", "ReportPlan", "ReportSelectionError", "ReportSummary", "ScenarioPlan",
    "parse_pairs", "plan_report", "report_zip", "write_report", "zip_folder",
]
