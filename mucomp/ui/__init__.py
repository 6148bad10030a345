"""Helpers shared by the Streamlit pages only.

- :mod:`mucomp.ui.figures`: pure plotly figure builders (no Streamlit import; unit-tested from
  the figure JSON).
- :mod:`mucomp.ui.session`: the pages' shared state and set-up (imports Streamlit).

Importing this package imports neither, so the core and the CLI never pull in a UI library.
"""
