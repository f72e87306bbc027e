"""Plots of the CLI's benchmarks.

    python -m clattn.bench softmax --n 256,512,1024 --d 64 --heads 8 --plot softmax.png
    python -m clattn.bench linear --csv-in linear.csv --plot linear.png

Runs `clattn bench OP [options] --csv` (every option this module does not know is passed to the
CLI) or reads such a CSV (--csv-in), then draws time and GFLOP/s against N on log axes, one line
per variant, with the device's name and its measured peak (the CLI's "peak" row) as a line.
The CLI is --clattn PATH, else $CLATTN_CLI, else the one bundled with the package
(pip install ./python), else the build tree next to $CLATTN_LIBRARY, else `clattn` on PATH.
--csv-out FILE keeps the CSV (with a "# device: ..." first line, which --csv-in reads back).
Needs matplotlib (pip install "clattn[plot]").
"""

import argparse
import csv
import io
import os
import re
import shutil
import subprocess
import sys

OPERATORS = ("softmax", "linear", "lsh", "routing", "ssm", "rpe", "gss")


def find_cli(explicit=None):
    cands = [explicit, os.environ.get("CLATTN_CLI"),
             os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "clattn")]
    libpath = os.environ.get("CLATTN_LIBRARY")
    if libpath:
        cands.append(os.path.join(os.path.dirname(os.path.abspath(libpath)), "samples", "clattn"))
    cands.append(shutil.which("clattn"))
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise SystemExit("clattn.bench: cannot find the clattn CLI (give --clattn PATH)")


def run_cli(cli, op, args):
    """Runs the CLI's benchmark; returns (csv text, device name)."""
    cmd = [cli, "bench", op] + list(args) + ["--csv"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit("clattn.bench: %s failed (exit %d)" % (" ".join(cmd), p.returncode))
    m = re.search(r"benchmarking on \S+ (.*)", p.stderr)
    device = m.group(1).strip() if m else ""
    return p.stdout, device


def parse_csv(text):
    """Rows of the CLI's CSV as dicts (numbers converted); a "# device: NAME" line gives the
    device. Returns (rows, device)."""
    device = ""
    lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            m = re.match(r"#\s*device:\s*(.*)", line)
            if m:
                device = m.group(1).strip()
            continue
        if line.strip():
            lines.append(line)
    start = next((i for i, l in enumerate(lines) if l.startswith("op,")), None)
    if start is None:
        raise SystemExit("clattn.bench: no CSV header (op,variant,...) in the input")
    rows = []
    for r in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
        for key in ("batch", "heads", "nq", "nk", "d", "causal"):
            r[key] = int(r[key])
        r["ms"], r["gflops"] = float(r["ms"]), float(r["gflops"])
        rows.append(r)
    return rows, device


def series_of(rows):
    """{label: [(N, ms, GFLOP/s)]}: a line per variant, and per element type when the CSV has
    rows of several (its "dtype" column: `clattn bench OP --dtype f32,f16,bf16`)."""
    dtypes = {r.get("dtype") for r in rows if r.get("dtype")}
    series = {}
    for r in rows:
        if r["variant"] in ("peak", "sgemm") or r["ms"] <= 0:
            continue
        label = r["variant"] if len(dtypes) <= 1 else "%s %s" % (r["variant"], r.get("dtype"))
        series.setdefault(label, []).append((r["nq"], r["ms"], r["gflops"]))
    return series


def plot(rows, device, out, title=None, op=None):
    """Time and GFLOP/s against N (log-log), a line per variant, the peak as a line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    peak = max((r["gflops"] for r in rows if r["variant"] == "peak"), default=0.0)
    series = series_of(rows)
    if not series:
        raise SystemExit("clattn.bench: no timed rows to plot")
    op = op or rows[0]["op"]
    fig, (ax_t, ax_g) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, pts in sorted(series.items()):
        pts.sort()
        n = [p[0] for p in pts]
        ax_t.plot(n, [p[1] for p in pts], marker="o", label=name)
        ax_g.plot(n, [p[2] for p in pts], marker="o", label=name)
    if peak > 0:
        ax_g.axhline(peak, color="black", linestyle="--", linewidth=1,
                     label="peak %.0f GFLOP/s" % peak)
    for ax, ylabel in ((ax_t, "time per call (ms)"), (ax_g, "GFLOP/s")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("N (sequence length)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: "%d" % x))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: "%g" % y))
        lo, hi = ax.get_ylim()
        if hi < 100 * lo:  # up to two decades: label the minor ticks too
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: "%g" % y))
        else:
            ax.yaxis.set_minor_formatter(NullFormatter())
    ax_g.legend(fontsize=8)
    r0 = rows[0]
    shape = "B=%d H=%d D=%d%s" % (r0["batch"], r0["heads"], r0["d"], " causal" if r0["causal"]
                                  else "")
    fig.suptitle(title or "clattn bench %s (%s) on %s" % (op, shape, device or "unknown device"),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m clattn.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("op", choices=OPERATORS)
    ap.add_argument("--plot", metavar="OUT.png", help="write the plot here")
    ap.add_argument("--csv-in", metavar="FILE", help="plot this CSV instead of running the CLI")
    ap.add_argument("--csv-out", metavar="FILE", help="keep the CLI's CSV here")
    ap.add_argument("--clattn", metavar="PATH", help="the clattn CLI")
    ap.add_argument("--title", help="the plot's title")
    args, cli_args = ap.parse_known_args(argv)
    if args.csv_in:
        with open(args.csv_in) as f:
            text = f.read()
        rows, device = parse_csv(text)
    else:
        text, device = run_cli(find_cli(args.clattn), args.op, cli_args)
        rows, _ = parse_csv(text)
    if args.csv_out:
        with open(args.csv_out, "w") as f:
            f.write("# device: %s\n%s" % (device, text if text.endswith("\n") else text + "\n"))
    if args.plot:
        plot(rows, device, args.plot, args.title, args.op)
        print("clattn.bench: wrote %s" % args.plot)
    elif not args.csv_out:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
