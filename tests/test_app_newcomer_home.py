"""Home and the URL as a newcomer meets them (issue 31), through AppTest on an empty store: the
class picker after other forget-set kinds and other data sets, Home's words for each forget-set
kind, the owner cookie written through a supported API, a deep link naming an unknown model, the
Attack settings kept in the URL, and one default class for the app, the CLI and the README."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mucomp.data import Scenario
from mucomp.forget_sets import ForgetSet, forget_words, of_classes
from mucomp.ui import links, session

ROOT = Path(__file__).resolve().parents[1]
HOME = str(ROOT / "Home.py")


@pytest.fixture(scope="module", autouse=True)
def empty_home(tmp_path_factory):
    """A private, empty MUCOMP_HOME for the module (nothing is trained or stored here). Home's
    estimate of the reference time loads the data set (CIFAR-10 imports torchvision, 10-20 s): it
    is left out, the pickers and texts tested here do not depend on it."""
    from mucomp.ui import widgets

    patch = pytest.MonkeyPatch()
    patch.setenv("MUCOMP_HOME", str(tmp_path_factory.mktemp("newcomer-home")))
    patch.setattr(widgets, "_reference_estimate", lambda s: None)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    patch.undo()
    st.cache_resource.clear()
    st.cache_data.clear()


def home(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60)
    at.query_params.update(query or {})
    return ok(at)


def ok(app_or_widget) -> AppTest:
    """Run the app (or the app of a widget just set) and check it raised nothing."""
    at = app_or_widget.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def forget(at: AppTest) -> ForgetSet:
    return at.session_state["mucomp_scenario"].forget_set


def query(at: AppTest) -> dict[str, str]:
    return {k: v[0] if isinstance(v, list) else v for k, v in at.query_params.items()}


# --- defect 1: One class can always be chosen again ------------------------------------------------


def test_one_class_comes_back_after_every_other_kind_with_a_class_in_the_picker():
    at = home()
    at.selectbox(key="home_forget_kind").set_value("classes").run()
    at.multiselect(key="home_forget_classes").set_value([5, 6]).run()
    ok(at.selectbox(key="home_forget_kind").set_value("class"))
    # Back to one class: the first of the classes just forgotten, shown by the picker.
    assert forget(at) == of_classes(5) and at.selectbox(key="home_forget").value == 5
    for other in ("random", "indices", "classes"):
        at.selectbox(key="home_forget_kind").set_value(other).run()
        ok(at.selectbox(key="home_forget_kind").set_value("class"))
        picked = at.selectbox(key="home_forget").value
        assert isinstance(picked, int) and forget(at) == of_classes(picked), other
    # A reload of a random forget set (a new session from the URL) goes back to one class too.
    reloaded = home({"dataset": "digits", "forget": "random:10%", "seed": "0"})
    ok(reloaded.selectbox(key="home_forget_kind").set_value("class"))
    assert reloaded.selectbox(key="home_forget").value == 3 and query(reloaded)["forget"] == "3"


def test_the_picker_rules_give_a_class_of_the_data_set_whatever_the_widget_held():
    assert session.class_choice(7, 10, (2,)) == 7
    for stale in (None, "cat (class 3)", 12, -1, True):  # missing, another data set's label, out of range
        assert session.class_choice(stale, 10, (2,)) == 2
    assert session.class_choice(None, 10) == links.DEFAULT_SCENARIO.forget_class
    assert session.classes_choice([4, "x", 99, 1], 10) == [1, 4]
    assert session.classes_choice([], 10, (9,)) == [9, 0]


# --- defect 4: the class picker follows the data set -------------------------------------------------


def test_the_class_pickers_name_the_classes_of_the_current_data_set():
    at = home({"dataset": "digits", "forget": "3", "seed": "0"})
    ok(at.selectbox(key="home_dataset").set_value("cifar10"))
    picker = at.selectbox(key="home_forget")
    assert picker.options[3] == "cat (class 3)" and picker.value == 3
    # The value is sent again with the new labels: the browser would keep "3 (class 3)" otherwise.
    assert picker.proto.set_value and picker.proto.raw_value == "cat (class 3)"
    at.selectbox(key="home_forget_kind").set_value("random").run()
    ok(at.selectbox(key="home_dataset").set_value("digits"))
    ok(at.selectbox(key="home_forget_kind").set_value("class"))
    picker = at.selectbox(key="home_forget")
    assert picker.proto.raw_value == "3 (class 3)" and forget(at) == of_classes(3)
    at.selectbox(key="home_forget_kind").set_value("classes").run()
    ok(at.selectbox(key="home_dataset").set_value("cifar10"))
    several = at.multiselect(key="home_forget_classes")
    assert several.proto.set_value and list(several.proto.raw_values) == ["cat (class 3)", "deer (class 4)"]


# --- defect 3 (Home): words that follow the forget-set kind --------------------------------------------


def _home_words(at: AppTest) -> str:
    """The guide's steps and the Prepare button's tooltip."""
    steps = [m.value for m in at.markdown if re.search(r"\*\*\d\.\*\*", m.value)]
    return " ".join([*steps, at.button(key="home_prepare").proto.help])


def test_home_speaks_of_the_forget_images_for_an_image_set_and_of_the_class_for_a_class():
    at = home({"dataset": "digits", "forget": "random:10%", "seed": "0"})
    words = _home_words(at)
    assert "without the forget images" in words and "Retrained model's" in words
    assert not re.search(r"forget class|whole class", words), words
    at = home()
    assert "without the forget class" in _home_words(at) and "only the forget class was lost" in _home_words(at)
    assert forget_words(of_classes([3, 5])).noun == "the forget classes"


# --- defect 11: the owner cookie through st.html; streamlit bounded -----------------------------------


def test_the_owner_cookie_is_written_by_st_html_not_the_removed_components_api():
    at = home()
    scripts = [h for h in at.get("html") if "document.cookie" in h.proto.body]
    assert len(scripts) == 1 and scripts[0].proto.unsafe_allow_javascript
    assert at.session_state["mucomp_owner"] in scripts[0].proto.body
    assert not at.get("iframe") and "streamlit.components.v1" not in Path(session.__file__).read_text()


def test_streamlit_is_bounded_and_the_installed_version_fits():
    from packaging.requirements import Requirement

    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requirement = next(Requirement(d) for d in deps if d.startswith("streamlit"))
    assert any(spec.operator == "<" for spec in requirement.specifier), requirement
    assert st.__version__ in requirement.specifier


# --- a deep link with an unknown model id says so ---------------------------------------------------


def test_a_link_naming_an_unknown_model_says_it_was_not_found_until_the_session_moves_on():
    at = home({"dataset": "digits", "forget": "3", "seed": "0", "a": "abc-missing"})
    assert at.session_state["mucomp_model_a"] is None
    assert at.session_state[session.KEY_LINK_PROBLEMS]
    assert any("`abc-missing`" in w.value and "Model A" in w.value for w in at.warning)
    ok(at)  # a rerun keeps saying it
    assert any("abc-missing" in w.value for w in at.warning)
    ok(at.selectbox(key="home_forget").set_value(4))  # another scenario: the link is behind us
    assert not any("abc-missing" in w.value for w in at.warning)
    assert links.missing_models("id-1", "id-2", {"id-1", "id-2"}) == ("id-1", "id-2", [])


def test_a_link_naming_a_scenario_that_cannot_be_opened_says_so():
    # An index list cannot come from a link, nor can an unknown forget text: say it, escaped.
    for forget in ("indices:58bf2a278dc0", "banana![x](http://evil.example/x.png)"):
        at = home({"dataset": "digits", "forget": forget, "seed": "0", "a": "abc-missing"})
        assert at.session_state["mucomp_scenario"] == links.DEFAULT_SCENARIO
        [warning] = [w.value for w in at.warning if "cannot be opened" in w.value]
        assert "Choose the scenario on Home" in warning and "[x](" not in warning  # brackets escaped
    assert "chosen on Home from its file" in links.unopened_scenario({"forget": "indices:58bf2a278dc0"})
    assert links.unopened_scenario({"a": "abc"}) is None
    ok(at.selectbox(key="home_forget").set_value(4))  # another scenario: the link is behind us
    assert not any("cannot be opened" in w.value for w in at.warning)


# --- the Attack settings survive a reload ------------------------------------------------------------

ATTACK_LINK = {"dataset": "digits", "forget": "3", "seed": "0", "feature": "confidence", "strategy": "custom",
               "threshold_a": "1.5", "threshold_b": "-0.25", "tab": "relearn"}


def test_the_attack_settings_come_back_from_the_url_and_stay_in_it():
    at = home(ATTACK_LINK)
    assert at.session_state[session.KEY_ATTACK] == {
        "metric": "confidence", "strategy": "custom", "tab": "relearn",
        "thresholds": {"confidence:a": 1.5, "confidence:b": -0.25}}
    assert query(at) == ATTACK_LINK  # kept in the URL for the next reload
    # Unknown or out-of-range values are ignored and dropped from the URL.
    bad = home({**ATTACK_LINK, "feature": "evil", "strategy": "x", "threshold_a": "nan", "threshold_b": "1e9",
                "tab": "../etc"})
    assert bad.session_state[session.KEY_ATTACK] == {**links.default_attack(), "strategy": "max_attack_score"}
    assert not set(query(bad)) & set(links.ATTACK_KEYS)
    assert links.tab_of_label("Per-example (U-LiRA)") == "ulira" and links.tab_of_label("nope") == "threshold"


ATTACK_TABS_APP = """
import streamlit as st

from mucomp.ui import session

session.init_state()
st.session_state[session.KEY_ATTACK]["tab"] = st.session_state.get("wanted_tab", "threshold")
for tab in session.attack_tabs():
    tab.write("drawn")
"""


def test_the_attack_page_opens_on_the_tab_the_session_keeps(tmp_path):
    script = tmp_path / "attack_tabs_app.py"
    script.write_text(ATTACK_TABS_APP)
    at = AppTest.from_file(str(script), default_timeout=30)
    at.session_state["wanted_tab"] = "relearn"
    ok(at)
    assert at.session_state[session.KEY_ATTACK_TAB] == "Relearning"
    assert [t.label for t in at.tabs] == list(links.ATTACK_TABS.values())


# --- one default class -------------------------------------------------------------------------------


def test_a_new_session_starts_on_the_class_the_readme_uses():
    at = home()
    assert at.session_state["mucomp_scenario"] == Scenario("digits", 3, 0) == links.DEFAULT_SCENARIO
    readme = (ROOT / "README.md").read_text()
    assert "--dataset digits --forget-class 3" in readme
    assert not re.search(r"--dataset digits --forget-class [0-24-9]\b", readme)

