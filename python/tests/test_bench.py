"""python -m clattn.bench: a plot from a CSV, and from a run of the CLI when one is found."""

import os

import pytest

from clattn import bench

pytest.importorskip("matplotlib")
DATA = os.path.join(os.path.dirname(__file__), "data", "softmax_pocl.csv")


def _png_ok(path):
    with open(path, "rb") as f:
        head = f.read(8)
    return head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 10000


def test_plot_from_csv(tmp_path):
    rows, device = bench.parse_csv(open(DATA).read())
    assert device.startswith("pthread") and {r["variant"] for r in rows} >= {"tiled", "peak"}
    out = tmp_path / "p.png"
    assert bench.main(["softmax", "--csv-in", DATA, "--plot", str(out)]) == 0
    assert _png_ok(out)


def test_plot_from_cli(tmp_path):
    try:
        cli = bench.find_cli()
    except SystemExit:
        pytest.skip("no clattn CLI found")
    out, csv_out = tmp_path / "cli.png", tmp_path / "cli.csv"
    assert bench.main(["softmax", "--clattn", cli, "--n", "16,32", "--d", "16", "--heads", "1",
                       "--variants", "tiled", "--reps", "1", "--csv-out", str(csv_out),
                       "--plot", str(out)]) == 0
    assert _png_ok(out)
    rows, device = bench.parse_csv(csv_out.read_text())
    assert device and [r["nq"] for r in rows] == [16, 32]


def test_series_per_dtype():
    head = "op,variant,batch,heads,nq,nk,d,causal,ms,gflops,dtype\n"
    rows, _ = bench.parse_csv(head + "".join(
        "softmax,tiled,1,8,%d,%d,64,0,%g,1.0,%s\n" % (n, n, n / 1e3, dt)
        for dt in ("f32", "f16") for n in (256, 512)))
    assert sorted(bench.series_of(rows)) == ["tiled f16", "tiled f32"]
    one, _ = bench.parse_csv(head + "softmax,tiled,1,8,256,256,64,0,1.5,1.0,f16\n")
    assert list(bench.series_of(one)) == ["tiled"]  # one type: the variant alone
