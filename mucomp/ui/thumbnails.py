"""Whether the pages can show training images (grids, instance panels) without downloading.

Results imported from the published comparator hold no images, and a user who never ran CIFAR-10
here may not have it on disk. The pages ask :func:`images_problem` before drawing an image: the data
set is read with downloads off (a page never starts a 170 MB download), and when it is not on disk
the page says so, and how to get it, instead of failing. With the data set on disk the images appear.
"""

from __future__ import annotations

from typing import Any

import streamlit as st


@st.cache_data(show_spinner=False, ttl=60)
def _problem(dataset: str, home: str) -> str | None:
    # Here, not at import: the reading pages never import the data loaders (torchvision) up front.
    from mucomp.data import DatasetUnavailableError, load_dataset
    from mucomp.data.loading import missing_without_loading

    missing = missing_without_loading(dataset)  # no torchvision import (seconds) for a data set not there
    if missing is not None:
        return missing
    try:
        load_dataset(dataset, download=False)
    except DatasetUnavailableError as err:
        return str(err)
    return None


def images_problem(s: Any) -> str | None:
    """Why the training images of scenario ``s`` can't be shown (its data set is not on disk), in
    words for a caption; None when they can (checked at most once a minute per data set and home)."""
    from mucomp import settings

    reason = _problem(s.dataset, str(settings.home()))
    if reason is None:
        return None
    return (f"Images are not shown: {reason.rstrip('.')}. Every figure here is read from the stored results; the "
            "images appear once the data set is on disk.")
