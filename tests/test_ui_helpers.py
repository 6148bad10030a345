"""The pages' pure helpers, without Streamlit: the Build grid, the Screen table, the image grid."""

import numpy as np
import pandas as pd
import pytest

from mucomp.config import grid_size as run_count
from mucomp.data import Scenario
from mucomp.methods import COMMON_PARAMS, available_methods
from mucomp.ui import grids, tables
from mucomp.ui.forms import MAX_GRID_RUNS, GridError, clean_label, grid_configs, parse_values

EPOCHS, LR, BATCH = COMMON_PARAMS


def test_lists_are_parsed_in_order_without_duplicates():
    assert parse_values(LR, "0.01, 0.05;0.01  1e-3") == [0.01, 0.05, 0.001]
    assert parse_values(EPOCHS, "3 5") == [3, 5]


@pytest.mark.parametrize("text", ["0", "-0.1", "abc", "0.01, zero", "nan", "inf"])
def test_a_bad_learning_rate_is_refused_with_the_allowed_range(text):
    with pytest.raises(GridError, match=r"Learning rate: .* is refused; it must be a number in \(0"):
        parse_values(LR, text)


def test_an_empty_field_and_a_fractional_epoch_are_refused():
    with pytest.raises(GridError, match="enter at least one value"):
        parse_values(BATCH, "  ")
    with pytest.raises(GridError, match="Epochs: '2.5' is refused; it must be an integer"):
        parse_values(EPOCHS, "2.5")


def test_grid_expands_to_validated_configs():
    info = available_methods()["ga"]
    grid = {"epochs": [2, 3], "lr": [0.01, 0.05], "batch_size": [32], "clip_grad_norm": [0.025]}
    configs = grid_configs(info, Scenario("digits", 3, 0), "original", grid)
    assert run_count(grid) == len(configs) == 4
    assert [(c.epochs, c.lr) for c in configs] == [(2, 0.01), (2, 0.05), (3, 0.01), (3, 0.05)]
    assert all(c.params == {"clip_grad_norm": 0.025} and c.forget_class == 3 for c in configs)
    replicated = grid_configs(info, Scenario("digits", 3, 1), "original", grid, seeds=[0, 1, 2])
    assert len(replicated) == 12 and [c.unlearn_seed for c in replicated[:3]] == [0, 1, 2]
    assert {c.train_seed for c in replicated} == {1} and len({(c.epochs, c.lr) for c in replicated}) == 4


def test_a_grid_that_is_too_large_is_refused():
    info = available_methods()["ga"]
    grid = {"epochs": list(range(1, 9)), "lr": [0.01, 0.02, 0.03, 0.04]}
    assert run_count(grid) > MAX_GRID_RUNS
    with pytest.raises(GridError, match="at most"):
        grid_configs(info, Scenario("digits", 3, 0), "original", grid)


def test_a_label_keeps_no_markup():
    assert clean_label("  My   <b>model</b> ![x](http://e.vil) v1.2 (ft) ") == "My bmodelb x(httpe.vil) v1.2 (ft)"
    assert len(clean_label("a" * 100)) == 60


# ---------------------------------------------------------------------------------------------
# The Screen table (mucomp.ui.tables)


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "ID": ["o", "r", "x", "y"],
        "Method": ["Original", "Retrained", "GA", "FT"],
        "UA": [1.0, 0.0, 0.2, np.nan],
        "RA": [1.0, 1.0, 0.9, 0.95],
        "RT": [np.nan, np.nan, 2.0, 4.0],
        "Owner": [None, None, "me", "you"],
        "Created": pd.to_datetime(["2026-01-01", "2026-01-01", "2026-01-02", None], utc=True),
    })


def test_goodness_is_a_fixed_scale_in_the_column_direction():
    table = _table()
    assert np.allclose(tables.goodness(table["UA"], "UA")[:3], [0.0, 1.0, 0.8])  # [0, 1], lower is better
    assert np.isnan(tables.goodness(table["UA"], "UA")[3])
    assert np.allclose(tables.goodness(table["RA"], "RA"), [1.0, 1.0, 0.9, 0.95])  # higher is better
    lo, hi = tables.RT_SCALE_S  # log scale: 0.1 s or less darkest, an hour or more white
    rt = tables.goodness(pd.Series([0.05, lo, np.sqrt(lo * hi), hi, 7200.0]), "RT")
    assert np.allclose(rt, [1.0, 1.0, 0.5, 0.0, 0.0])
    assert np.isnan(tables.goodness(table["Owner"], "Owner")).all()  # no fixed scale: no colour


def test_a_cell_keeps_its_colour_whatever_rows_are_shown():
    table = _table()
    everything = tables.cell_colors(table, ["accuracy", "efficiency"])
    filtered = tables.cell_colors(table.iloc[[1, 2]], ["accuracy", "efficiency"])
    assert (filtered == everything.loc[[1, 2]]).all().all()
    assert everything.loc[1, "UA"] == tables.cell_colors(table.iloc[[1]], ["accuracy"]).loc[1, "UA"]


def test_cells_are_tinted_only_for_the_chosen_groups():
    table = _table()
    css = tables.cell_colors(table, ["accuracy"])
    assert css.loc[1, "UA"].startswith("background-color") and css.loc[0, "RT"] == ""
    assert css.loc[3, "UA"] == ""  # a missing value is not coloured
    darker = tables.cell_colors(table, ["efficiency"])
    assert darker.loc[2, "RT"] != darker.loc[3, "RT"]
    assert tables.tint("#2563eb", 1.0) in css.loc[1, "UA"]  # UA 0 %: the darkest blue



def test_whole_column_tints_are_exactly_the_scalar_tint():
    # Every channel's rounding (ties to even included) must match tint(): the colours are
    # computed per column with numpy, and a cell must not change colour with the code path.
    shares = np.concatenate([np.linspace(0.0, 1.0, 2001), np.random.default_rng(0).random(500), [np.nan]])
    for _, color in tables.COLOR_GROUPS.values():
        fast = tables.tints(color, shares)
        assert list(fast[:-1]) == [tables.tint(color, s) for s in shares[:-1]] and fast[-1] == ""
    assert tables.tints("#2563eb", np.array([])).shape == (0,)

def test_the_colour_legend_says_what_dark_means_per_group():
    html = tables.color_legend_html(["accuracy", "privacy"])
    assert "fixed scales" in html and "Accuracy" in html and "Privacy" in html and "Efficiency" not in html
    assert "UA, TUA darkest at 0 %" in html and "Avg. Gap at 0 %" in html
    assert tables.tint(tables.COLOR_GROUPS["accuracy"][1], 1.0) in html
    assert "log scale" in tables.color_legend_html(["efficiency"]) and tables.color_legend_html([]) == ""


def test_every_shown_column_has_a_width_that_fits_a_1440_px_window():
    assert set(tables.SHOWN_COLUMNS) == set(tables.COLUMN_WIDTHS) and "Created" not in tables.SHOWN_COLUMNS
    assert sum(tables.COLUMN_WIDTHS.values()) + 40 <= 990  # + the row-selection column; the table is ~990 px


def test_details_show_the_config_and_the_figures_as_key_value_tables():
    config = {"dataset": "digits", "forget_class": 3, "unlearn_seed": 0, "method": "ga", "base": "original", "epochs": 12,
              "lr": 0.05, "batch_size": 32, "params": {"clip_grad_norm": 0.025}, "checkpoint": None}
    table = tables.config_table(config, [f"c{k}" for k in range(10)])
    assert table.columns.tolist() == ["Setting", "Value"]
    assert dict(zip(table["Setting"], table["Value"], strict=True)) == {
        "Data set": "digits", "Forget class": "3 (c3)", "Unlearning seed": "0", "Method": "ga", "Base model": "Original",
        "Epochs": "12", "Learning rate": "0.05", "Batch size": "32", "param: clip_grad_norm": "0.025"}
    assert tables.config_table(config, [str(k) for k in range(10)])["Value"][1] == "3"  # digits: the name is the number
    figures = tables.figures_table({"metrics": {"UA": 0.02, "RA": 0.9, "PS": 0.41, "PS_exact": 0.39, "RT": 1.5},
                                    "created_at": "2026-01-02T03:04:05+00:00"})
    values = dict(zip(figures["Figure"], figures["Value"], strict=True))
    assert values["PS (51-point grid)"] == "0.410" and values["PS_exact (every value as threshold)"] == "0.390"
    assert values["UA · RA"] == "2.0% · 90.0%" and values["RT"] == "1.50 s" and values["Created (UTC)"] == "2026-01-02 03:04"
    older = dict(tables.figures_table({"metrics": {"PS": None}}).to_numpy().tolist())  # an older result
    assert older["PS (51-point grid)"] == "—" and older["PS_exact (every value as threshold)"] == "—"


def test_filter_sort_and_owner_words():
    table = _table()
    assert list(tables.filter_and_sort(table, ["GA", "FT"], None)["ID"]) == ["x", "y"]
    assert list(tables.filter_and_sort(table, [], "UA", ascending=True)["ID"]) == ["r", "x", "o", "y"]
    shown = tables.readable(table, "me")
    assert list(shown["Owner"]) == ["—", "—", "you", "another session"]
    assert shown["Created"].iloc[3] == "—"
    assert tables.styled(shown, ["privacy"]).to_html()


# ---------------------------------------------------------------------------------------------
# The clickable image grid (mucomp.ui.grids)



def test_mosaic_places_upscaled_images_row_major():
    images = np.zeros((3, 8, 8, 1), dtype=np.uint8)
    images[1] = 255
    canvas = grids.mosaic(images, columns=2, cell=16, pad=2)
    assert canvas.shape == (2 * 18, 2 * 18, 3)
    assert canvas[1 + 8, 18 + 1 + 8].tolist() == [255, 255, 255]  # image 1: first row, second column
    assert canvas[18 + 1 + 8, 1 + 8].tolist() == [0, 0, 0]  # image 2: second row, first column


def test_grid_figure_reports_the_dataset_index_of_a_clicked_cell():
    images = np.random.default_rng(0).integers(0, 255, (5, 8, 8, 1), dtype=np.uint8)
    fig = grids.image_grid_figure(images, [10, 11, 12, 13, 14], columns=3, selected=12, title="High risk")
    image, *cells = fig.data
    assert image.source.startswith("data:image/png;base64,")
    assert [t.customdata[0][0] for t in cells] == [10, 11, 12, 13, 14]  # 8x8: one trace per image
    assert {row[0] for row in cells[2].customdata} == {12} and [s.name for s in fig.layout.shapes] == ["selected"]
    with pytest.raises(ValueError, match="5 images but 4 ids"):
        grids.image_grid_figure(images, [1, 2, 3, 4])
    big = np.zeros((2, 16, 16, 3), dtype=np.uint8)  # larger images: one click target per image
    assert [row[0] for row in grids.image_grid_figure(big, [7, 8]).data[1].customdata] == [7, 8]


def test_small_images_show_each_pixel_value_on_hover_and_keep_their_aspect():
    images = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8, 1)
    fig = grids.image_grid_figure(images, [10, 11], columns=2, captions=["first", "second"])
    cells = fig.data[1:]  # one trace per image, one marker per pixel
    assert [t.meta for t in cells] == ["first", "second"] and all(len(t.x) == 64 for t in cells)
    assert cells[1].customdata[8 * 2 + 3] == [11, 2, 3, int(images[1, 2, 3, 0])]  # [index, row, column, value]
    assert "%{customdata[3]}" in cells[0].hovertemplate and "%{meta}" in cells[0].hovertemplate
    step = grids.CELL_PIXELS + grids.PAD  # pixel (0, 0) of image 1 sits in its cell's top-left corner
    assert step <= cells[1].x[0] < step + grids.CELL_PIXELS / 8 + grids.PAD
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    assert fig.layout.xaxis.constrain == fig.layout.yaxis.constrain == "domain"


def test_the_progress_bar_moves_forward_through_the_stages():
    from mucomp.ui.widgets import overall_fraction, stage_text

    steps = [("references", 0.5), ("unlearning", 0.0), ("unlearning", 0.5), ("unlearning", 1.0), ("evaluating", 0.5),
             ("embedding", 0.0), ("saving", 1.0)]
    values = [overall_fraction({"stage": stage, "fraction": f}) for stage, f in steps[1:]]
    assert values == sorted(values) and values[-1] == pytest.approx(1.0)
    assert overall_fraction({"stage": "references", "fraction": 0.5}) == 0.5
    text = stage_text({"stage": "unlearning", "figures": {"epoch": 3, "epochs": 12, "forget_accuracy": 0.25}})
    assert text == "Stage 2/7: Unlearning · epoch 3/12 · forget accuracy 25.0%"
    # a short run's epochs may all pass between two refreshes: the last one stays shown
    later = {"stage": "embedding", "figures": {"epoch": 12, "epochs": 12, "forget_accuracy": 0.0, "method": "ga"}}
    assert stage_text(later) == "Stage 6/7: Embedding (UMAP) · last epoch 12/12 · forget accuracy 0.0%"
    training = {"stage": "references", "figures": {"reference": "original", "epoch": 4, "epochs": 30}}
    assert stage_text(training) == "Stage 1/7: Preparing the reference models · training the original model · epoch 4/30"
    from mucomp.ui.widgets import done_text

    done = {"figures": {"epoch": 12, "epochs": 12, "method": "ga"}, "result": {"UA": 0.02, "TRA": 0.9, "PS": 0.41,
                                                                               "RT": 0.3}}
    assert done_text(done) == "12/12 epochs · UA 2.0% · TRA 90.0% · PS 0.41 · RT 0.30 s"


def test_a_result_without_ps_shows_a_blank_cell():
    from mucomp.compare import experiment_table
    from mucomp.ui import figures

    base = {"kind": "unlearned", "config": {"dataset": "digits", "forget_class": 3, "seed": 0, "method": "ga",
                                            "base": "original", "epochs": 2, "lr": 0.1, "batch_size": 32}}
    results = [{**base, "id": "new00001", "metrics": {"UA": 0.1, "RA": 0.9, "PS": 0.4, "PS_exact": 0.35}},
               {**base, "id": "old00001", "metrics": {"UA": 0.2, "RA": 0.8, "PS": None}}]  # an older schema
    table = experiment_table(results)
    assert np.isnan(table.loc[1, "PS"])
    view = tables.readable(table, None)
    assert tables.cell_colors(view, ["privacy"]).loc[1, "PS"] == ""
    assert "—" in tables.styled(view, ["privacy"]).to_html()
    fig = figures.pareto_figure(table, np.array([True, False]), color="PS")
    assert fig.data[0].customdata[1][3] is None and np.isnan(fig.data[0].marker.color[1])
    assert figures.pareto_figure(table, np.array([True, False]), color="RT").data  # no RT stored: no crash


def test_the_reference_time_note_of_a_downloaded_architecture_never_loads_its_data(monkeypatch):
    """CIFAR-10's published ResNet-18 has no measured training speed: Home must not load the data
    set (torchvision, seconds of stall in the server) to say nothing."""
    from mucomp.data import Scenario
    from mucomp.data import scenario as scenario_module
    from mucomp.ui import widgets

    def refuse(name, *args, **kwargs):
        raise AssertionError(f"load_dataset({name!r}) called for a note")

    monkeypatch.setattr(scenario_module, "load_dataset", refuse)
    assert widgets.reference_time_note(Scenario("cifar10", 3, 0)) is None
    with pytest.raises(AssertionError, match="fashion_mnist"):  # an architecture trained here reads its sizes
        widgets.reference_time_note(Scenario("fashion_mnist", 3, 0, arch="fmnist_cnn"))
