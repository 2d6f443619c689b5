"""The Gradio app: wires the tabs to the storage. Training runs in worker processes, never here."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the app makes no outbound connection

import gradio as gr  # noqa: E402

from app.runner import Runner, list_runs  # noqa: E402
from app.state import read_study  # noqa: E402
from app.tabs import compare_tab, export_tab, run_tab, search_tab, studies_tab  # noqa: E402
from app.tabs.context import UiContext  # noqa: E402
from app.views import awaiting_first_point  # noqa: E402
from core.specs import SpecError  # noqa: E402
from tuning.results import study_results  # noqa: E402
from tuning.storage import DEFAULT_STORAGE, load_study, redact_url  # noqa: E402

REFRESH_SECONDS = 2.0
FIRST_POINT_REFRESH_SECONDS = 0.4  # the Run tab's poll between Start and the first curve point
CSS = (".field-error p { color: #b42318; margin: 0; font-size: 0.9em; }\n"
       ".field-note p { color: var(--body-text-color-subdued); margin: 0; font-size: 0.9em; }\n"
       # the fit report's long lines wrap, never hide
       "#fit-summary pre, #fit-summary code { white-space: pre-wrap !important; word-break: break-word; }")
INTRO = ("# lorascope\nShort LoRA fine-tunes over ranks, alphas and scaling rules. Standard LoRA scales the "
         "adapter by **alpha/r**, rsLoRA by **alpha/sqrt(r)**: watch what that does to the gradient norm "
         "and the loss as the rank grows. Press **Start** to run the built-in demo.")


def build_app(storage_url: str = DEFAULT_STORAGE, run_dir: str = "runs", *, standby: bool = False) -> gr.Blocks:
    """Build the Blocks app over one storage; ``standby`` keeps a pre-warmed worker ready for Start."""
    ctx = UiContext(storage_url=storage_url, runner=Runner(storage_url, run_dir, standby=standby))
    with gr.Blocks(title="lorascope", analytics_enabled=False) as app:
        gr.Markdown(INTRO)
        # the value is picked at page load (studies_tab.page_study), never at build time
        ctx.study = gr.Dropdown(list_runs(storage_url), value=None, label="Study", allow_custom_value=True,
                                elem_id="study-select",
                                info="every tab shows this study; runs go on when the page closes")
        visible = gr.State("run")  # per browser session: the tab on screen
        drawn = gr.State(None)  # per session: what the visible tab's figures were last drawn from
        with gr.Tabs():
            with gr.Tab("Run", id="run") as run_item:
                run = run_tab.build(ctx)
                ctx.source = run["source"]
            with gr.Tab("Compare", id="compare") as compare_item:
                compare = compare_tab.build()
            with gr.Tab("Search & fit", id="search") as search_item:
                search = search_tab.build(ctx, law_c=run["law_c"])
            with gr.Tab("Export", id="export") as export_item:
                export_tab.build(ctx, export_item)
            with gr.Tab("Studies", id="studies") as studies_item:
                studies = studies_tab.build(ctx)

        panels = {"run": [run["status"], run["loss_plot"], run["grad_plot"], run["table"]],
                  "compare": [compare["verdicts"], compare["loss_vs_rank"], compare["grad_vs_rank"]],
                  "search": [search["progress"], search["fit_text"], search["landscape"], search["law"]]}
        outputs = [component for components in panels.values() for component in components]

        def tab_outputs(tab: str, view, which: str, *, figures: bool = True) -> list:
            if tab == "run":
                return run_tab.live_outputs(view, ctx, figures=figures)
            if tab == "compare":
                return compare_tab.compare_outputs(view.started, which)
            return [search_tab.search_progress(view), *search_tab.search_outputs(view.started)]

        def refresh_all(name, which):
            view = read_study(storage_url, name)
            return [*[value for tab in panels for value in tab_outputs(tab, view, which)], None]

        def refresh_visible(name, which, tab, last):
            """Recompute only the visible tab, and its figures only when the study changed since they were drawn.

            The last value is the timer's interval: short while a started run has drawn no point yet.
            """
            values = {component: gr.skip() for component in outputs}
            if tab not in panels:
                return [*values.values(), last, REFRESH_SECONDS]
            view = read_study(storage_url, name, with_curves=tab != "search")
            signature = (tab, which, view.signature())
            if signature != last or tab == "run":  # the run tab's status also follows the worker process
                values.update(zip(panels[tab], tab_outputs(tab, view, which, figures=signature != last)))
            waiting = tab == "run" and bool(name) and awaiting_first_point(view.records, ctx.runner.is_running(name))
            return [*values.values(), signature, FIRST_POINT_REFRESH_SECONDS if waiting else REFRESH_SECONDS]

        def redraw(name, which, tab):
            return refresh_visible(name, which, tab, None)

        inputs = [ctx.study, compare["which"], visible]
        timer = gr.Timer(REFRESH_SECONDS)
        outputs_drawn = [*outputs, drawn, timer]
        timer.tick(refresh_visible, [*inputs, drawn], outputs_drawn, show_progress="hidden",
                   api_visibility="private")
        ctx.study.change(redraw, inputs, outputs_drawn, show_progress="hidden", api_visibility="private")
        compare["which"].change(redraw, inputs, outputs_drawn, show_progress="hidden", api_visibility="private")
        for tab, item in (("run", run_item), ("compare", compare_item), ("search", search_item),
                          ("export", export_item), ("studies", studies_item)):
            item.select(lambda tab=tab: tab, None, visible, api_visibility="private").then(
                redraw, inputs, outputs_drawn, show_progress="hidden", api_visibility="private")
        app.load(redraw, inputs, outputs_drawn, show_progress="hidden", api_visibility="private")
        # the API's /refresh gets every tab at once; a page never presses this button
        api_refresh = gr.Button(visible=False)
        api_refresh.click(refresh_all, [ctx.study, compare["which"]], [*outputs, drawn], api_name="refresh",
                          show_progress="hidden")
        # the page's study is chosen once, at load; the slow studies table is read only when its tab opens,
        # so no late page-load refresh can put an older study back after Start
        app.load(studies["page_study"], None, [ctx.study], api_visibility="private")
        studies_item.select(studies["rows"], None, [studies["table"]], api_visibility="private")

        def results(name: str) -> dict:
            """The study's results JSON (as `lorascope results --json` writes it)."""
            try:
                return study_results(load_study(storage_url, name))
            except SpecError as err:
                return {"study": name, "trials": [], "error": str(err)}

        gr.api(results, api_name="results")
    return app


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names resolving only to them."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False


def bind_warning(host: str, auth: tuple[str, str] | None) -> str | None:
    """The warning for serving beyond this machine without a login, else None."""
    if is_loopback(host) or auth is not None:
        return None
    return (f"lorascope: warning: serving on {host} without --auth: anyone who can reach this machine can "
            f"start runs. Pass --auth USER:PASS.")


def check_bind(host: str, port: int) -> None:
    """Raise SpecError unless the server could listen on ``host``:``port`` (checked before serving)."""
    if not 0 < port < 65536:
        raise SpecError(f"must be between 1 and 65535, got {port}", field="port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        raise SpecError(f"cannot use {host!r}: {getattr(err, 'strerror', None) or err}", field="host") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds, TIME_WAIT is fine
        try:
            sock.bind(address)
        except OSError as err:
            raise SpecError(f"cannot listen on {host}:{port}: {err.strerror or err} (pick another --port)",
                            field="port") from None


def launch(*, host: str = "127.0.0.1", port: int = 7860, storage_url: str = DEFAULT_STORAGE,
           auth: tuple[str, str] | None = None, share: bool = False, block: bool = True, standby: bool = True):
    """Start the server; warns when reachable from other machines without a login.

    ``standby`` keeps a pre-warmed worker process ready for the next Start (see app.standby).
    """
    warning = bind_warning(host, auth)
    if warning:
        print(warning, file=sys.stderr)
    app = build_app(storage_url, standby=standby)
    print(f"lorascope: serving http://{host}:{port} over {redact_url(storage_url)} (Ctrl-C to stop; runs keep going)",
          file=sys.stderr)
    return app.launch(server_name=host, server_port=port, auth=auth, share=share, css=CSS, quiet=not share,
                      prevent_thread_lock=not block, footer_links=["api"])
