"""A clickable grid of images as a plotly figure (pure: arrays in, a Figure out).

The grid is one PNG mosaic (compact in the figure JSON whatever the image size) with invisible
markers whose ``customdata`` starts with the image's dataset index, so that
``st.plotly_chart(..., on_select="rerun")`` reports which image was clicked
(:func:`mucomp.ui.figures.selection_indices` reads it back). Small images (up to
:data:`PIXEL_HOVER_LIMIT` pixels, e.g. the 8x8 digits) get one marker per pixel, so the hover
shows the value of the pixel under the pointer; larger ones one marker per image.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

#: Pixels per cell side after nearest-neighbour upscaling (small images stay crisp).
CELL_PIXELS = 48
PAD = 4
#: Screen pixels per mosaic pixel: a cell is drawn about 46 px wide, whatever the image size.
DISPLAY_SCALE = 46 / (CELL_PIXELS + PAD)
BACKGROUND = 255
#: Images with at most this many pixels get one hover marker per pixel (its value on hover).
PIXEL_HOVER_LIMIT = 64


def mosaic(images: np.ndarray, columns: int, cell: int = CELL_PIXELS, pad: int = PAD) -> np.ndarray:
    """``[n, H, W, C]`` uint8 images (C = 1 or 3) -> one ``[rows * (cell + pad), columns * (cell + pad), 3]``
    uint8 RGB mosaic, row-major, each image upscaled by an integer factor to about ``cell``
    pixels and centred in its cell on a white background."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] not in (1, 3) or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [n, H, W, 1 or 3], got {images.dtype} {images.shape}")
    n, h, w, _ = images.shape
    columns = max(1, min(int(columns), n)) if n else 1
    rows = max(1, -(-n // columns))
    factor = max(1, cell // max(h, w))
    step = cell + pad
    canvas = np.full((rows * step, columns * step, 3), BACKGROUND, dtype=np.uint8)
    for k in range(n):
        image = images[k]
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        big = np.kron(image, np.ones((factor, factor, 1), dtype=np.uint8))
        r, c = divmod(k, columns)
        top = r * step + pad // 2 + (cell - big.shape[0]) // 2
        left = c * step + pad // 2 + (cell - big.shape[1]) // 2
        canvas[top:top + big.shape[0], left:left + big.shape[1]] = big[:cell, :cell]
    return canvas


def png_data_uri(rgb: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URI of a uint8 RGB array."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_grid_figure(
    images: np.ndarray,
    ids: Sequence[int],
    *,
    columns: int = 10,
    captions: Sequence[str] | None = None,
    selected: int | None = None,
    title: str = "",
) -> go.Figure:
    """A clickable image grid: trace 0 the mosaic (``go.Image``), then the invisible click
    targets with ``customdata = [dataset index, ...]`` and hover text ``captions[k]`` (default
    ``"Image #id"``): trace 1 one marker per image, or, for images of at most
    :data:`PIXEL_HOVER_LIMIT` pixels, one trace per image (in ``ids`` order) with one marker per
    pixel whose hover adds the pixel's row, column and value (0-255; ``r, g, b`` for colour
    images). ``selected`` (a dataset index) gets a dark frame. The figure has a fixed
    size (every cell about 46 px, square: both axes keep one scale), so grids of different
    lengths line up and images are never stretched."""
    ids = [int(i) for i in ids]
    images = np.asarray(images)
    if len(ids) != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {len(ids)} ids")
    captions = list(captions) if captions is not None else [f"Image #{i}" for i in ids]
    columns = max(1, min(int(columns), len(ids))) if ids else 1
    canvas = mosaic(images, columns) if ids else np.full((CELL_PIXELS, CELL_PIXELS, 3), BACKGROUND, np.uint8)
    step = CELL_PIXELS + PAD
    centres = [divmod(k, columns) for k in range(len(ids))]
    fig = go.Figure()
    fig.add_trace(go.Image(source=png_data_uri(canvas), hoverinfo="skip", name="images"))
    hoverlabel = {"bgcolor": "white", "bordercolor": "#111827", "font": {"color": "#111827"}}
    h, w = (images.shape[1], images.shape[2]) if ids else (0, 0)
    if ids and h * w <= PIXEL_HOVER_LIMIT:  # one trace per image, one marker per pixel
        for k, (i, caption) in enumerate(zip(ids, captions, strict=True)):
            xs, ys, custom, size = _pixel_targets(images[k], i, *centres[k])
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="markers", customdata=custom, meta=caption,
                marker={"size": size, "symbol": "square", "color": "rgba(0,0,0,0.01)", "line": {"width": 0}},
                hovertemplate="%{meta}<br>pixel (row %{customdata[1]}, column %{customdata[2]}): "
                              "%{customdata[3]} of 255<br>click to inspect<extra></extra>",
                hoverlabel=hoverlabel, name=f"image {i}", showlegend=False,
            ))
    else:
        fig.add_trace(go.Scatter(
            x=[c * step + step / 2 for _, c in centres],
            y=[r * step + step / 2 for r, _ in centres],
            mode="markers",
            marker={"size": 30, "symbol": "square", "color": "rgba(0,0,0,0.01)", "line": {"width": 0}},
            customdata=[[i] for i in ids],
            text=captions,
            hovertemplate="%{text}<br>click to inspect<extra></extra>",
            hoverlabel=hoverlabel,
            name="cells",
            showlegend=False,
        ))
    if selected is not None and int(selected) in ids:
        r, c = centres[ids.index(int(selected))]
        fig.add_shape(type="rect", x0=c * step, x1=(c + 1) * step, y0=r * step, y1=(r + 1) * step,
                      line={"color": "#111827", "width": 3}, name="selected")
    top = 30 if title else 0
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 14}},
        margin={"l": 0, "r": 0, "t": top, "b": 0},
        width=round(canvas.shape[1] * DISPLAY_SCALE),
        height=round(canvas.shape[0] * DISPLAY_SCALE) + top,
        clickmode="event+select", dragmode=False, hovermode="closest",
        template="plotly_white",
    )
    # One scale on both axes, kept by shrinking the drawing area (never by stretching the images)
    # when the chart gets less room than its size.
    fig.update_xaxes(visible=False, range=[0, canvas.shape[1]], constrain="domain")
    fig.update_yaxes(visible=False, range=[canvas.shape[0], 0], scaleanchor="x", scaleratio=1, constrain="domain")
    return fig


def _pixel_targets(image: np.ndarray, dataset_index: int, row: int, column: int):
    """The hover/click markers of one small image in grid cell (``row``, ``column``): one per
    pixel at its centre (mosaic units), ``customdata = [dataset index, pixel row, pixel column,
    value]`` (``"r, g, b"`` for colour images), and the marker size in screen pixels."""
    h, w, channels = image.shape
    factor = max(1, CELL_PIXELS // max(h, w))
    step = CELL_PIXELS + PAD
    top = row * step + PAD // 2 + (CELL_PIXELS - h * factor) // 2
    left = column * step + PAD // 2 + (CELL_PIXELS - w * factor) // 2
    xs, ys, custom = [], [], []
    for y in range(h):
        for x in range(w):
            value = image[y, x]
            xs.append(left + (x + 0.5) * factor)
            ys.append(top + (y + 0.5) * factor)
            custom.append([int(dataset_index), y, x,
                           int(value[0]) if channels == 1 else ", ".join(str(int(v)) for v in value)])
    return xs, ys, custom, max(2, round(factor * DISPLAY_SCALE))
