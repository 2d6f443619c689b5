"""The Gradio app in a real headless Chromium: live curves, a run that outlives its page, Stop, Export;
the study a page shows after an early Start and after an app restart.

Needs /usr/bin/chromium (`scripts/install_browser.sh`); skipped without it. Run with
`pytest -q tests/browser_tests`. Set LORASCOPE_SCREENSHOT=1 to also copy the live-view screenshot
to docs/live-view.png.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: run scripts/install_browser.sh"),
]
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from app.runner import safe_name  # noqa: E402
from app.ui_process import start_server, stop_server  # noqa: E402
from tuning.sweep import process_alive  # noqa: E402

DEMO_STUDY = "demo-browser"
DEMO_TRIALS = 8  # ranks 4,16,64,256 x rules standard,rslora: the Run tab's preselected demo
DEMO_STEPS = 150
LONG_STUDY = "long"
LONG_STEPS = 3000
VIEWPORT = {"width": 1500, "height": 1100}

# Per-trial traces of a rendered Plotly figure under one gr.Plot (the figure carries meta on each trace).
PLOT_JS = """(elemId) => {
  const plots = document.querySelectorAll('#' + elemId + ' .js-plotly-plot');
  const el = plots[plots.length - 1];
  if (!el || !el.data) return null;
  const last = (xs) => {
    let m = null;
    for (const v of (xs || [])) if (v !== null && (m === null || v > m)) m = v;
    return m;
  };
  return {
    yaxis: (el.layout && el.layout.yaxis && el.layout.yaxis.type) || null,
    traces: el.data.map(t => ({kind: t.meta ? t.meta.kind : null, trial: t.meta ? t.meta.trial : null,
                               study: t.meta ? t.meta.study : null,
                               last_step: last(t.x && t.x._inputArray ? t.x._inputArray : t.x)})),
  };
}"""


def wait_until(check, timeout: float, what: str, interval: float = 0.5):
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    value = None
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {value!r}")
        time.sleep(interval)


def open_app(context, url: str):
    """A new page on the app, once Gradio has rendered the Run tab and its plots."""
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_selector("#start-sweep", timeout=60_000)
    page.wait_for_selector("#loss-plot .js-plotly-plot", timeout=60_000)
    return page


def plot(page, elem_id: str) -> dict | None:
    return page.evaluate(PLOT_JS, elem_id)


def trials_in(fig: dict | None, kind: str, study: str) -> dict[int, float | None]:
    """Trial number -> last plotted step, for the traces of ``kind`` from ``study``."""
    if not fig:
        return {}
    return {t["trial"]: t["last_step"] for t in fig["traces"] if t["kind"] == kind and t["study"] == study}


def text_input(page, elem_id: str):
    return page.locator(f"#{elem_id}").locator("input, textarea").first


def select_study(page, name: str) -> None:
    """Pick ``name`` in the Study dropdown (shared by every tab), unless it is already selected."""
    box = text_input(page, "study-select")
    if box.input_value() == name:
        return
    box.click()
    box.fill(name)
    option = page.get_by_role("option", name=name, exact=True)
    try:
        option.click(timeout=5_000)
    except Exception:  # noqa: BLE001 - the choices may lag behind; the dropdown takes custom values
        box.press("Enter")
    wait_until(lambda: box.input_value() == name, 10, f"the Study dropdown to show {name!r}")


def start_sweep(page, name: str, steps: int) -> None:
    """Start the preselected demo sweep under ``name`` with ``steps`` steps per trial."""
    page.get_by_label("Steps", exact=True).fill(str(steps))
    text_input(page, "study-name").fill(name)
    page.click("#start-sweep")
    wait_until(lambda: f"Started {name}" in page.inner_text("#run-message") or
               text_input(page, "study-select").input_value() == name, 30, f"the start of {name!r}")


@functools.lru_cache(maxsize=None)
def storage(url: str) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})


def trials_of(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage(url)).get_trials(deepcopy=False)


def test_live_curves_page_close_stop_and_export(server, browser, tmp_path):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    try:
        _run(server, context, tmp_path)
    finally:
        context.close()


def _run(server, context, tmp_path):
    # (a) the demo sweep: one loss and one grad-norm curve per trial, grad norm on a log axis.
    page = open_app(context, server.url)
    start_sweep(page, DEMO_STUDY, DEMO_STEPS)

    def all_curves():
        loss, grad = plot(page, "loss-plot"), plot(page, "grad-plot")
        ok = (len(trials_in(loss, "loss", DEMO_STUDY)) == DEMO_TRIALS
              and len(trials_in(grad, "grad_norm", DEMO_STUDY)) == DEMO_TRIALS)
        return (loss, grad) if ok else None

    loss, grad = wait_until(all_curves, 120, f"{DEMO_TRIALS} loss and grad-norm curves of {DEMO_STUDY!r}")
    assert sorted(trials_in(loss, "loss", DEMO_STUDY)) == list(range(DEMO_TRIALS))
    assert sorted(trials_in(grad, "grad_norm", DEMO_STUDY)) == list(range(DEMO_TRIALS))
    assert grad["yaxis"] == "log", grad["yaxis"]
    assert loss["yaxis"] in (None, "linear", "-"), loss["yaxis"]
    shot = tmp_path / "live-view.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("LORASCOPE_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "live-view.png")
    wait_until(lambda: [t.state for t in trials_of(server.storage_url, DEMO_STUDY)]
               == [TrialState.COMPLETE] * DEMO_TRIALS, 120, f"every trial of {DEMO_STUDY!r} to complete")

    # (b) a long run keeps going while no page is open, and a new page shows it again.
    start_sweep(page, LONG_STUDY, LONG_STEPS)

    def long_progress(pg):
        steps = [s for s in trials_in(plot(pg, "loss-plot"), "loss", LONG_STUDY).values() if s is not None]
        grads = trials_in(plot(pg, "grad-plot"), "grad_norm", LONG_STUDY)
        return max(steps) if steps and grads and max(steps) >= 10 else None

    before = wait_until(lambda: long_progress(page), 60, f"curves of {LONG_STUDY!r}")
    page.close()
    time.sleep(3)
    page = open_app(context, server.url)
    select_study(page, LONG_STUDY)
    after = wait_until(lambda: (lambda s: s if s and s > before else None)(long_progress(page)), 30,
                       f"curves of {LONG_STUDY!r} past step {before} after reopening")
    assert after > before

    # (c) Stop ends the worker; the interrupted trials (the whole pack it was training) are stopped
    # failures and nothing stays RUNNING.
    pid = json.loads((server.tmp / "runs" / "logs" / f"{safe_name(LONG_STUDY)}.pid.json").read_text())["pid"]
    assert process_alive(pid), "the long run's worker should still be running before Stop"
    page.click("#stop-run")

    def stopped():
        trials = trials_of(server.storage_url, LONG_STUDY)
        states = [t.state for t in trials]
        if process_alive(pid) or TrialState.RUNNING in states or TrialState.WAITING in states:
            return None
        return trials

    trials = wait_until(stopped, 30, f"the {LONG_STUDY!r} worker to stop")
    interrupted = [t for t in trials if t.state == TrialState.FAIL and "pid" in t.user_attrs]
    assert interrupted, [(t.number, t.state, t.user_attrs.get("outcome")) for t in trials]
    assert all(t.user_attrs["outcome"]["status"] == "stopped" for t in interrupted), \
        [t.user_attrs["outcome"] for t in interrupted]
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
    assert all(t.user_attrs["outcome"]["status"] == "stopped" for t in trials if t.state == TrialState.FAIL)
    wait_until(lambda: "(idle)" in page.inner_text("#run-status"), 15, "the status line to say idle")

    # (d) export the finished demo study's recommendation as a PEFT adapter_config.json.
    select_study(page, DEMO_STUDY)
    page.get_by_role("tab", name="Export").click()
    page.wait_for_selector("#export-download", state="visible")

    def preview():
        code = page.locator("#export-preview .cm-content")
        return code.inner_text() if code.count() else page.inner_text("#export-preview")

    # Switching formats makes the preview and the download; going back to peft gives the JSON config.
    page.locator("#export-format").get_by_text("python", exact=True).click()
    wait_until(lambda: "lora_alpha=" in preview(), 30, "the python preview")
    page.locator("#export-format").get_by_text("peft", exact=True).click()
    wait_until(lambda: '"lora_alpha":' in preview() and '"r":' in preview(), 30, "the peft preview")
    notes = page.inner_text("#export-notes")
    with page.expect_download(timeout=30_000) as info:
        page.click("#export-download")
    target = tmp_path / "export" / "adapter_config.json"
    target.parent.mkdir()
    info.value.save_as(target)

    from peft import LoraConfig

    config = LoraConfig.from_pretrained(str(target.parent))
    assert config.r in {4, 16, 64, 256}
    assert f"r={config.r}, lora_alpha={config.lora_alpha}," in notes, notes
    best = min((t for t in trials_of(server.storage_url, DEMO_STUDY)), key=lambda t: t.value)
    assert config.r == best.params.get("rank", config.r), (config.r, best.params)
    page.close()


def _finished_study(url: str, name: str) -> None:
    """A study with one completed trial, written straight to the storage (no worker)."""
    study = optuna.create_study(study_name=name, storage=storage(url))
    study.add_trial(optuna.trial.create_trial(value=1.0, params={}, distributions={}))


def _states(url: str, name: str) -> list[TrialState]:
    """Trial states of study ``name``; none while its worker has not created it yet."""
    try:
        return [t.state for t in trials_of(url, name)]
    except KeyError:
        return []


def test_start_right_after_page_load_keeps_the_new_study_selected(browser, tmp_path):
    server = start_server(tmp_path)
    context = browser.new_context(viewport=VIEWPORT)
    try:
        _finished_study(server.storage_url, "older")
        page = open_app(context, server.url)  # the page opens "older", the only study
        start_sweep(page, "fresh", 40)
        box = text_input(page, "study-select")
        assert box.input_value() == "fresh"
        time.sleep(17)  # past the ~15 s a page-load study-list refresh used to take before it snapped back
        assert box.input_value() == "fresh"
        page.get_by_role("tab", name="Studies").click()  # the studies table refresh leaves the choice alone
        page.wait_for_selector("#studies-table")
        wait_until(lambda: "fresh" in page.inner_text("#studies-table"), 30, "the studies table")
        assert box.input_value() == "fresh"
    finally:
        context.close()
        stop_server(server)


def test_a_page_reopened_after_an_app_restart_shows_the_running_study(browser, tmp_path):
    server = start_server(tmp_path)
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = open_app(context, server.url)
        start_sweep(page, "live", LONG_STEPS)
        wait_until(lambda: TrialState.RUNNING in _states(server.storage_url, "live"), 60, "a running trial of 'live'")
        page.close()
        stop_server(server, workers=False)  # the worker runs on, as after a Ctrl-C of `lorascope ui`
        _finished_study(server.storage_url, "newer")  # newest study when the app restarts, but idle
        server = start_server(tmp_path)
        page = open_app(context, server.url)
        box = text_input(page, "study-select")
        wait_until(lambda: box.input_value() == "live", 30, "the running study in the Study dropdown")
        wait_until(lambda: "(running)" in page.inner_text("#run-status"), 30, "the status of the running study")
    finally:
        context.close()
        stop_server(server)


def test_form_messages_sit_under_their_fields_in_ui_words(browser, tmp_path):
    server = start_server(tmp_path)
    context = browser.new_context(viewport=VIEWPORT)
    try:
        _finished_study(server.storage_url, "done")
        page = open_app(context, server.url)
        wait_until(lambda: text_input(page, "study-select").input_value() == "done", 30, "the only study")
        page.click("#stop-run")  # an idle study: nothing to stop
        wait_until(lambda: "Nothing running in done" in page.inner_text("#run-message"), 15, "the idle Stop message")
        time.sleep(3)  # a live refresh later, the message is still there
        assert "Nothing running in done" in page.inner_text("#run-message")

        # a dataset with one usable row of three: refused under the dataset, the skipped rows as notes
        data = tmp_path / "mostly-bad.jsonl"
        data.write_text('{"text": "the only good row"}\nnot json\n{"other": 1}\n')
        source = text_input(page, "run-source")
        source.click()
        page.get_by_role("option", name="your model + data").click()
        page.locator("#data-file input[type=file]").set_input_files(str(data))
        page.wait_for_timeout(1500)
        page.click("#start-sweep")
        wait_until(lambda: "has 1 usable example(s)" in page.inner_text("body"), 30, "the too-small dataset error")
        notes = page.locator("#data-notes")
        wait_until(lambda: "skipped" in notes.inner_text(), 10, "the skipped-row notes")
        colour = notes.locator("p").first.evaluate("el => getComputedStyle(el).color")
        assert colour != "rgb(180, 35, 24)", colour  # notes are not in the error red

        # the Search tab: 2.5 trials is refused under its own field, in UI words
        page.get_by_role("tab", name="Search & fit").click()
        help_text = page.locator("#search-alpha-max").inner_text()
        assert "512×sqrt(64)" in help_text and "256×sqrt(r)" in help_text, help_text  # no Markdown italics
        page.get_by_label("Trials per rank", exact=True).fill("2.5")
        page.click("#start-search")
        box = page.locator("#search-trials-error")
        wait_until(lambda: "whole number" in box.inner_text(), 15, "the error under Trials per rank")
        assert "--" not in box.inner_text()
    finally:
        context.close()
        stop_server(server)
