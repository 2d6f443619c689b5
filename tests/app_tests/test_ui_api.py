"""The Gradio app through its API (gradio_client): start a run, read back results, export."""

import json
import socket
import time

import pytest
from gradio_client import Client

import app.ui
from app.ui import bind_warning, build_app, check_bind, is_loopback
from core.specs import SpecError


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    app = build_app(f"sqlite:///{tmp}/s.db", run_dir=str(tmp / "runs"))
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    app.close()


def _wait_results(client, name, n, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        results = client.predict(name, api_name="/results")
        if len(results["trials"]) == n and all(t["state"] == "COMPLETE" for t in results["trials"]):
            return results
        time.sleep(1)
    raise AssertionError(f"trials did not complete: {results}")


def test_api_starts_a_sweep_and_reads_back_its_results(client):
    status, *_ = client.predict("synthetic-facts", "", None, "4,64", ["standard", "rslora"], 16.0, "16", 1e-3, 60,
                                32, "cpu", "api-sweep", api_name="/start_sweep")
    assert "Started" in status
    results = _wait_results(client, "api-sweep", 4)
    by_key = {(t["rule"], t["rank"]): t for t in results["trials"]}
    assert by_key["standard", 64]["gamma"] == pytest.approx(16 / 64)
    assert by_key["rslora", 64]["gamma"] == pytest.approx(16 / 8)
    assert all(len(t["curve"]) == 60 for t in results["trials"])
    outputs = client.predict("api-sweep", "step0", api_name="/refresh")
    verdicts = outputs[4]
    assert "standard**: collapsing" in verdicts and "rslora**: rank-stabilized" in verdicts


def test_invalid_fields_are_reported_and_nothing_starts(client):
    status, _study, *errors = client.predict("synthetic-facts", "", None, "0,4", ["standard"], 16.0, "16", 1e-3, 0,
                                             32, "cpu", "never", api_name="/start_sweep")
    assert "Fix the fields" in status
    shown = [e["value"] for e in errors if e["visible"]]  # the boxes under the bad fields, and only those
    assert len(shown) == 2 and "Ranks must" in shown[0] and "Steps must" in shown[1]
    assert client.predict("never", api_name="/results")["trials"] == []


def test_export_preview_of_the_best_trial_of_a_one_alpha_sweep(client):
    from app.tabs.export_tab import BEST_TRIAL

    _wait_results(client, "api-sweep", 4)  # one alpha per rank: alpha* is not located, so no "recommended"
    notes, preview, download = client.predict("api-sweep", BEST_TRIAL, "peft", api_name="/export_preview")
    config = json.loads(preview["value"] if isinstance(preview, dict) else preview)
    assert config["r"] in (4, 64) and config["peft_type"] == "LORA"
    assert "gamma=" in notes


def test_loopback_binding_needs_no_warning_and_public_binding_does():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    assert bind_warning("127.0.0.1", None) is None
    assert "--auth" in bind_warning("0.0.0.0", None)
    assert bind_warning("0.0.0.0", ("user", "secret")) is None


def test_public_config_holds_no_password_and_no_analytics(monkeypatch, tmp_path):
    monkeypatch.setattr(app.ui, "list_runs", lambda url: [])  # no server behind the URL: build the page only
    blocks = build_app("postgresql://lora:s3cr3t-pw@db.example:5432/studies", run_dir=str(tmp_path / "runs"))
    config = json.dumps(blocks.get_config_file(), default=repr)  # gr.State carries its delete_callback
    assert "s3cr3t-pw" not in config and "lora:***@db.example" in config
    assert blocks.get_config_file()["analytics_enabled"] is False


def test_bad_host_and_busy_port_are_refused_before_serving():
    with pytest.raises(SpecError) as bad_host:
        check_bind("999.999.999.999", 7860)
    assert bad_host.value.field == "host" and "999.999.999.999" in str(bad_host.value)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(SpecError) as in_use:
            check_bind("127.0.0.1", busy.getsockname()[1])
    assert in_use.value.field == "port" and str(in_use.value).startswith("--port: cannot listen")
    check_bind("127.0.0.1", _free_port())
