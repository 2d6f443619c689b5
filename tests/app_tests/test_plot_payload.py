"""The Run tab's figure payload: the same JSON Plotly writes, without building Plotly objects."""

import base64
import json

import numpy as np

from app.figures import curve_spec, loss_figure
from app.plot_payload import PlotJSON


def _records():
    curve = [{"step": s, "loss": 2.0 / (1 + s), "grad_norm": 1.0, "eval_loss": 1.5} if s % 5 == 4 else
             {"step": s, "loss": float("nan") if s == 7 else 2.0 / (1 + s), "grad_norm": 1.0} for s in range(40)]
    return [{"number": 0, "state": "RUNNING", "rank": 4, "alpha": 8.0, "rule": "rslora", "lr": 1e-3, "curve": curve}]


def _array(value):
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).astype(float).tolist()
    return [float("nan") if v is None else float(v) for v in value]


def _decoded(figure_json):
    """Traces' x/y as plain lists (typed arrays decoded), whichever way they were written."""
    return [(_array(t["x"]), _array(t["y"]), t["meta"], t["name"]) for t in json.loads(figure_json)["data"]]


def test_payload_reads_back_as_the_figure_plotly_would_write():
    records = _records()
    ours, plotly = PlotJSON(curve_spec(records, "loss")).to_json(), loss_figure(records).to_json()
    assert '"bdata"' in ours  # arrays travel as base64 typed arrays
    np.testing.assert_equal(_decoded(ours), _decoded(plotly))
    assert json.loads(ours)["layout"] == json.loads(plotly)["layout"]


def test_no_curves_gives_no_spec():
    assert curve_spec([{"number": 0, "state": "WAITING", "curve": []}], "loss") is None
