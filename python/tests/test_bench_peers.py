"""samples/bench_peers.py's summary of issue 11's targets (target_lines), on made-up rows."""

import importlib.util
import os

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "samples", "bench_peers.py")


def _load():
    spec = importlib.util.spec_from_file_location("bench_peers", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(op, n, d, causal, **variants):
    """variants: name=(ms, gflops[, note])"""
    return {"op": op, "n": n, "d": d, "causal": causal,
            "variants": {k.replace("_", "-"): (v[0], v[1], v[2] if len(v) > 2 else "")
                         for k, v in variants.items()}}


def test_softmax_targets_count_and_name_the_misses():
    bp = _load()
    rows = [
        _row("softmax", 1024, 64, 0, clattn=(10.0, 270.0), torch=(11.0, 0), openvino=(9.5, 0),
             clattn_naive=(100.0, 0)),
        _row("softmax", 1024, 64, 1, clattn=(5.0, 200.0), torch=(6.0, 0), openvino=(7.0, 0),
             clattn_naive=(4.0, 0)),
        _row("softmax", 2048, 128, 0, clattn=(60.0, 280.0), torch=(70.0, 0, "WRONG"),
             openvino=(61.0, 0)),
    ]
    lines = bp.target_lines(rows, 400.0)
    assert lines[0] == "softmax clattn >= torch (ratio >= 1.0): 2 of 2"
    assert lines[1].startswith("softmax clattn >= openvino (ratio >= 1.0): 2 of 3")
    assert "full N 1024 D 64 0.950" in lines[1]
    # 270 / 400 and 280 / 400 pass, 200 / 400 does not
    assert lines[2] == "softmax clattn >= 0.6 of peak: 2 of 3 (short: causal N 1024 D 64 50.0%)"
    assert lines[3] == ("softmax clattn >= its naive path: 1 of 2 "
                        "(short: causal N 1024 D 64 0.80x)")


def test_a_wrong_clattn_row_is_a_miss_everywhere():
    bp = _load()
    rows = [_row("softmax", 1024, 64, 0, clattn=(1.0, 300.0, "WRONG"), torch=(2.0, 0))]
    lines = bp.target_lines(rows, 400.0)
    assert lines[0].startswith("softmax clattn >= torch (ratio >= 1.0): 0 of 1")
    assert lines[1].startswith("softmax clattn >= 0.6 of peak: 0 of 1")


def test_linear_targets():
    bp = _load()
    rows = [
        _row("linear", 16384, 64, 0, clattn=(2.0, 130.0), torch=(12.0, 0)),
        _row("linear", 16384, 64, 1, clattn=(2.0, 70.0), torch=(2.5, 0)),
    ]
    lines = bp.target_lines(rows, 400.0)
    assert lines == [
        "linear non-causal >= 0.3 of peak: 1 of 1",
        "linear causal >= 0.2 of peak: 0 of 1 (short: causal N 16384 D 64 17.5%)",
        "linear clattn >= 1.5x chunked torch: 1 of 2 (short: causal N 16384 D 64 1.25x)",
    ]
    assert bp.target_lines(rows, 0.0)[-1].startswith("linear clattn >= 1.5x")
