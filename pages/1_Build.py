"""Build: run unlearning methods over a grid of hyper-parameters in the background, follow their
progress, cancel them; or upload a model's weights to compare as a "Custom" experiment."""

import streamlit as st

from mucomp.config import grid_size
from mucomp.execution import EvaluateUpload, PullPublished, SubmissionError
from mucomp.methods import MethodInfo, Param, available_methods, plugin_errors
from mucomp.seeds import parse_seeds
from mucomp.ui import forms, session, widgets
from mucomp.ui.labels import experiment_labels
from mucomp.ui.text import md
from mucomp.uploads import EXTENSIONS, MAX_UPLOAD_BYTES, UploadError, check_upload

session.setup("Build")


def choose_base(listing: list[dict]) -> str:
    """The model the method starts from: the Original or an earlier experiment."""
    options = ["original"] + [r["id"] for r in listing if r.get("kind") in ("unlearned", "custom", "published")]
    labels = experiment_labels(listing)
    form = st.session_state[session.KEY_FORM]
    if form.get("base") not in options:
        form["base"] = "original"
    return session.form_widget(
        st.selectbox, "Start from", "base", "original", options=options,
        format_func=lambda i: "Original (trained on every class)" if i == "original" else labels.get(i, i),
        help="The model the unlearning method changes: usually the Original; pick an earlier experiment to "
             "continue from it.",
    )


def choose_method() -> MethodInfo:
    """Built-in and registered custom methods, the same way."""
    methods = available_methods()
    form = st.session_state[session.KEY_FORM]
    if form.get("method") not in methods:
        form["method"] = "ga" if "ga" in methods else next(iter(methods))
    name = session.form_widget(
        st.selectbox, "Method", "method", "ga", options=list(methods),
        format_func=lambda k: methods[k].label + ("" if methods[k].builtin else "  (custom)"),
        help="The unlearning method. Custom methods registered through MUCOMP_PLUGINS or an installed "
             "package appear here beside the built-in ones.",
    )
    info = methods[name]
    st.caption(info.description or "No description.")
    for error in plugin_errors():
        st.warning(f"A custom method could not be loaded and is not listed: {md(error, 2000)}")
    return info


def list_field(container, info: MethodInfo, param: Param, default) -> list | None:
    """A text field taking one or more values of ``param``; refused values are shown at once."""
    with container:
        text = session.form_widget(
            st.text_input, forms.label_of(param), f"{info.name}.{param.name}", forms.default_text(param, default),
            help=f"{param.help.capitalize() if param.help else forms.label_of(param)}. "
                 f"One value or several separated by commas (each makes its own run): {param.allowed()}.",
        )
        try:
            return forms.parse_values(param, text)
        except forms.GridError as err:
            st.error(str(err), icon=":material/block:")
            return None


def own_param(container, info: MethodInfo, param: Param, default):
    """A control for one of the method's own parameters: a list for numbers, a multi-choice for
    choices (both vary in the grid), a checkbox for booleans. Returns (values or None, fixed)."""
    name = f"{info.name}.{param.name}"
    help_text = f"{param.help.capitalize() if param.help else param.name}. Allowed: {param.allowed()}."
    if param.type in ("float", "int"):
        return list_field(container, info, param, default), False
    with container:
        if param.type == "choice":
            values = session.form_widget(
                st.multiselect, forms.label_of(param), name, [default] if default is not None else [],
                options=list(param.choices), help=help_text + " Each choice makes its own run.",
            )
            if not values:
                st.error(f"{forms.label_of(param)}: choose at least one.", icon=":material/block:")
                return None, False
            return list(values), False
        value = session.form_widget(st.checkbox, forms.label_of(param), name, bool(default), help=help_text)
        return value, True


def grid_form(info: MethodInfo, dataset: str, arch: str | None = None,
              forget_kind: str | None = None) -> tuple[dict, dict, bool]:
    """Every hyper-parameter control, at the method's defaults for the data set, architecture and
    kind of forget set; returns (grid, fixed, ok)."""
    defaults = info.defaults_for(dataset, arch, forget_kind)
    grid, fixed, ok = {}, {}, True
    columns = st.columns(3)
    for column, param in zip(columns, info.common_params, strict=False):  # only those the method uses
        values = list_field(column, info, param, defaults.get(param.name))
        ok &= values is not None
        grid[param.name] = values or []
    if forms.unused_text(info):
        st.caption(forms.unused_text(info))
    own = info.own_params
    if own:
        st.markdown("**The method's own parameters**")
        columns = st.columns(max(3, len(own)))
        for column, param in zip(columns, own, strict=False):
            values, single = own_param(column, info, param, defaults.get(param.name))
            ok &= values is not None
            if single:
                fixed[param.name] = values
            else:
                grid[param.name] = values or []
    return grid, fixed, ok


def run_section(s: session.Scenario, listing: list[dict], ready: bool) -> None:
    st.header("Run an unlearning method")
    left, right = st.columns(2)
    with left:
        base = choose_base(listing)
    with right:
        info = choose_method()
    grid, fixed, ok = grid_form(info, s.dataset, s.arch, s.forget_set.kind)
    seeds_text = st.text_input(
        "Unlearning seeds (replicates)", value="0", key="build_seeds",
        help="One run per seed and grid point, e.g. 0-4 for five replicates: runs that differ only in their seed "
             "form a group, which Screen shows as mean ± 95 % interval. The seed drives batch order, random labels "
             "and tie-breaks; the references' training seed is the scenario's (Home).",
    )
    seeds, problem = [0], None
    try:
        seeds = parse_seeds(seeds_text, limit=forms.MAX_GRID_RUNS)
    except ValueError as err:
        ok, problem = False, f"Unlearning seeds: {err}"
    count = grid_size(grid) * len(seeds) if ok else 0
    configs = []
    if ok:
        try:
            configs = forms.grid_configs(info, s, base, grid, fixed, seeds=seeds)
        except forms.GridError as err:
            problem = str(err)
    st.markdown(f"This grid makes **{count} run{'s' if count != 1 else ''}**" + (
        " (every combination of the lists above" + (f", each with {len(seeds)} seeds)." if len(seeds) > 1 else ").")
        if count > 1 else "."))
    if problem:
        st.error(problem, icon=":material/block:")
    if configs:
        stored_notice(info, configs, listing)
    busy_refs = (job := session.reference_job(s)) is not None and job["state"] in ("queued", "running")
    if not ready and not busy_refs:
        st.caption("Prepare the reference models first (above).")
    clicked = st.button(
        f"Run {count} experiment{'s' if count != 1 else ''}", type="primary", key="build_run",
        disabled=not configs or not (ready or busy_refs),
        help="Queue the runs; they run one after another in the background while you use the other pages.",
    )
    st.caption(f"{forms.grid_limit_text()}, and at most {session.MAX_QUEUED_RUNS} runs of this session wait in the "
               "queue at once. They run in a separate worker process, so their run times measure the method, not "
               "this page.")
    if clicked:
        try:
            session.get_queue().submit(configs, owner=session.owner())
        except SubmissionError as err:
            st.error(f"{err}. Nothing was queued.", icon=":material/block:")
            return
        # No st.rerun(): the progress panel below is drawn in this same run and shows the new job; a
        # second full page run would compete with the run's first second for the CPU.
        st.toast(f"Queued {len(configs)} run(s).")


#: Screen's own key for the experiment its Details show: dropped so that Details opens on Model B.
SCREEN_DETAIL_KEY = "mucomp_screen_detail"


def _open_stored(experiment_id: str, listing: list[dict], page: str) -> None:
    """Make a stored experiment Model B (the Original Model A when none is chosen) and open ``page``."""
    session.set_model("b", experiment_id)
    if page == "contrast" and session.model_ids()[0] in (None, experiment_id):
        session.set_model("a", session.reference_ids(listing).get("original"))
    st.session_state.pop(SCREEN_DETAIL_KEY, None)
    st.switch_page(session.PAGES[page])


def stored_notice(info: MethodInfo, configs: list, listing: list[dict]) -> None:
    """Runs of the grid that exist already (identical config and seeds): say so and offer to open
    the stored one. Running them again stays possible (a copy counts once in its group)."""
    found = forms.stored_runs(info, configs, listing)
    if not found:
        return
    st.info(forms.stored_runs_text(found, len(configs)), icon=":material/content_copy:")
    first = next(iter(found.values()))
    which = "it" if len(configs) == 1 else first
    row = st.container(horizontal=True)
    if row.button(f"Open {which} on Screen", key="build_open_stored", icon=":material/table:",
                  help="Make the stored experiment Model B and show it on Screen."):
        _open_stored(first, listing, "screen")
    if row.button(f"Contrast {which}", key="build_contrast_stored", icon=":material/compare:",
                  help="Make the stored experiment Model B (Model A: the Original unless you chose one) and "
                       "open Contrast."):
        _open_stored(first, listing, "contrast")


def progress_section(s: session.Scenario) -> None:
    st.header("Progress")
    widgets.jobs_panel(
        lambda j: forms.progress_job(j, s),
        finished_shown=5,
        empty="No runs of this scenario yet in this session. Results appear on the Screen page when a run is done.",
    )
    others = forms.other_scenarios_text(session.home_jobs(), s, session.owner())
    if others:
        st.caption(others)
    st.page_link(session.PAGES["screen"], label="See the results on Screen", icon=":material/arrow_forward:")


UPLOAD_KEY = "mucomp_upload_checked"  # (file id, arch, classes), the model or None, the error or None


def upload_section(s: session.Scenario, ready: bool) -> None:
    st.header("Upload a model")
    spec = s.spec
    st.markdown(
        f"Compare a model trained elsewhere: upload its state dict (`.pth`, `.pt` or `.safetensors`, at most "
        f"{MAX_UPLOAD_BYTES // 1024**2} MB) for the `{s.arch}` architecture with {spec.num_classes} classes. "
        "It is evaluated as is and listed as a *Custom* experiment. Files are read with `weights_only=True`: "
        "no code inside them runs."
    )
    uploaded = st.file_uploader(
        "Weights file", type=[e.lstrip(".") for e in EXTENSIONS], key="build_upload",
        help="A state dict saved with torch.save(model.state_dict(), path) or safetensors' save_file.",
    )
    label = st.text_input("Label in the table", value="My model", max_chars=60, key="build_upload_label",
                          help="How the experiment is named on Screen.")
    if uploaded is None:
        return
    # Validated once per file and architecture, not on every rerun of the page (a ResNet-18 is 45 MB).
    upload_key = (uploaded.file_id, s.arch, spec.num_classes)
    checked = st.session_state.get(UPLOAD_KEY)
    if checked is None or checked[0] != upload_key:
        try:
            upload = check_upload(uploaded.name, uploaded.getvalue(), spec, arch=s.arch)
            checked = (upload_key, upload.model, None, upload.notes)
        except UploadError as err:
            checked = (upload_key, None, str(err), [])
        st.session_state[UPLOAD_KEY] = checked
    _, model, problem, notes = checked
    if problem is not None:  # the file name and the message are the uploader's text: shown literally
        st.error(f"{md(problem, 2000)} Nothing was stored.", icon=":material/block:")
        return
    st.success(f"{md(uploaded.name)} fits `{s.arch}` ({uploaded.size / 1024:.0f} kB).", icon=":material/check_circle:")
    for note in notes:
        st.info(md(note, 2000), icon=":material/info:")
    if not ready:
        st.info("Prepare the reference models first (above): the upload is compared with them.")
        return
    if st.button("Evaluate and store", key="build_upload_run", type="primary",
                 help="Evaluate the uploaded model in the background and store it as a Custom experiment."):
        weights = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
        try:
            session.get_queue().submit([EvaluateUpload(s, weights, forms.clean_label(label) or "Uploaded model")],
                                       owner=session.owner())
        except SubmissionError as err:
            st.error(f"{err}. Nothing was queued.", icon=":material/block:")
            return
        st.toast("Upload queued for evaluation.")
        st.rerun()


def published_section(s, ready: bool) -> None:
    """Pull an unlearned model someone published (mucomp.sharing.zoo) into the store, beside your runs."""
    from mucomp.sharing import zoo

    entries = [entry for entry in zoo.catalogue() if entry.dataset == s.dataset]
    with st.expander("Published unlearned models", expanded=False):
        if not entries:
            st.caption(f"No published unlearned models are known for {s.spec.label}; the table lists "
                       "CIFAR-10 ResNet-18 files (`mucomp zoo list`).")
            return
        repo = st.selectbox("Repository", [e.repo for e in entries], key="build_zoo_repo",
                            format_func=lambda r: f"{zoo.find(r).method} ({r})")
        entry = zoo.find(repo)
        if s.forget_class is None:
            st.caption("The published unlearned models forgot one class; choose a forget set of one class on Home.")
            return
        card = entry.published.get(str(s.forget_class), {})
        st.caption(f"File `{entry.file_for(s.forget_class)}`. Recipe: {entry.recipe}. Card: forget-class test "
                   f"accuracy {card.get('forget_test_accuracy', float('nan')):.1%}, retain classes "
                   f"{card.get('retain_test_accuracy', float('nan')):.1%}; mucomp checks both after its evaluation.")
        if not ready:
            st.info("Prepare the reference models first (above): the published model is compared with them.")
            return
        if st.button("Download, evaluate and store", key="build_zoo_pull",
                     help="Download the file from the Hugging Face Hub in the background, load it with the strict "
                          "architecture check, evaluate it and store it as a Published experiment."):
            try:
                session.get_queue().submit([PullPublished(s, entry.repo)], owner=session.owner())
            except SubmissionError as err:
                st.error(f"{err}. Nothing was queued.", icon=":material/block:")
                return
            st.toast("Published model queued.")


s = session.scenario()
st.title("Build")
st.caption(f"Scenario: {session.scenario_label(s)}. Each run copies the base model, applies the method, then "
           "evaluates accuracy, privacy and representations and stores everything.")
listing = session.experiments(s)
ready = session.references_ready(s)
if not ready:
    st.subheader("Reference models")
    widgets.reference_status(s, key="build_prepare")
run_section(s, listing, ready)
progress_section(s)
upload_section(s, ready)
published_section(s, ready)
