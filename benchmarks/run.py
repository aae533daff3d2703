"""Benchmark sklearn_bp against scikit-learn's MLPClassifier / MLPRegressor.

Usage::

    python benchmarks/run.py            # full run (a few minutes)
    python benchmarks/run.py --quick    # under 2 minutes
    python benchmarks/run.py --only W4 --dtypes float32

Each workload is fitted by both estimators with equal settings (architecture,
optimizer, batch size, learning rate, L2 penalty, fixed epochs with ``tol=0`` and
a huge ``n_iter_no_change``, ``random_state``), in float64 and float32. Fits are
repeated with the order alternating (A B, B A, ...) and the median is reported.
Per row: seconds per epoch of both, their ratio, the training accuracy (R^2 for
regression) of both, the peak extra memory of each during ``fit``
(tracemalloc), and the fraction of the GEMM limit each reaches. The table is
printed and written, with the machine's description, as JSON (and as a
reStructuredText table) to ``benchmarks/results/``.

The L-BFGS rows (``LB1``, ``LB2``: ``optimizer="lbfgs"`` next to MLP's
``solver="lbfgs"``) have a table of their own: seconds per L-BFGS iteration
(fit time / ``n_iter_``) of both, their ratio, both iteration counts and both
final losses (``loss_``, L2 term included), so that equal work and an equal
result can be checked on the same line. They are not in the geometric mean::

    python benchmarks/run.py --quick --only LB1,LB2

On machines where ``OPENBLAS_CORETYPE`` is forced to an older kernel, run it as
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py`` to
measure the kernel numpy would pick itself (the table header says which kernel
ran).
"""

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import sklearn
from sklearn.metrics import accuracy_score, r2_score
from threadpoolctl import threadpool_info, threadpool_limits

import sklearn_bp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import (  # noqa: E402
    gemm_limit_seconds,
    gemm_rate,
    is_sparse,
    layer_shapes,
    peak_fit_memory,
    performed_gemm_seconds,
    timed_fits,
    timed_predicts,
)
from workloads import WORKLOADS  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DTYPES = {"float64": np.float64, "float32": np.float32}


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = [
        {
            k: info.get(k)
            for k in ("internal_api", "version", "architecture", "num_threads")
        }
        for info in threadpool_info()
    ]
    return {
        "cpu": cpu,
        "n_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "sklearn_bp": sklearn_bp.__version__,
        "blas": blas,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "load_average": os.getloadavg(),
    }


def score(est, X, y, task):
    pred = est.predict(X)
    return float(
        accuracy_score(y, pred) if task == "classification" else r2_score(y, pred)
    )


def fitted_fields(w, X, y, fit_ours, fit_theirs):
    """The row's columns read off both fitted models: scores and dtypes."""
    return {
        "score_name": "accuracy" if w.task == "classification" else "r2",
        "score_ours": score(fit_ours, X, y, w.task),
        "score_mlp": score(fit_theirs, X, y, w.task),
        "coefs_dtype_ours": str(fit_ours.coefs_[0].dtype),
        "coefs_dtype_mlp": str(fit_theirs.coefs_[0].dtype),
    }


def run_row(w, dtype_name, X, y, args):
    if w.solver == "lbfgs":
        return run_lbfgs_row(w, dtype_name, X, y, args)
    epochs = w.epochs_quick if args.quick else w.epochs
    ours, theirs = w.estimators(max_iter=epochs)
    times, (fit_ours, fit_theirs) = timed_fits(ours, theirs, X, y, args.repeats)
    for est in (fit_ours, fit_theirs):
        assert est.n_iter_ == epochs, (type(est).__name__, est.n_iter_, epochs)
    s_ours = float(np.median(times[0])) / epochs
    s_mlp = float(np.median(times[1])) / epochs
    row = {
        "workload": w.name,
        "description": w.description,
        "dtype": dtype_name,
        "n_samples": X.shape[0],
        "epochs": epochs,
        "repeats": args.repeats,
        "alpha": w.alpha,
        "in_geomean": w.in_geomean,
        "fit_seconds_ours": times[0],
        "fit_seconds_mlp": times[1],
        "s_per_epoch_ours": s_ours,
        "s_per_epoch_mlp": s_mlp,
        "ratio": s_ours / s_mlp,
        **fitted_fields(w, X, y, fit_ours, fit_theirs),
    }
    add_peak_memory(row, w, X, y, args)
    n_outputs = len(np.unique(y)) if w.task == "classification" else 1
    if n_outputs == 2:
        n_outputs = 1
    shapes = layer_shapes(X.shape[1], w.hidden_layer_sizes, n_outputs)
    row["gemm_flops_per_epoch"] = 6.0 * X.shape[0] * sum(a * b for a, b in shapes)
    if is_sparse(X):
        row["gemm_rate_gflops"] = None  # the first layer is a sparse product
        row["gemm_fraction_ours"] = row["gemm_fraction_mlp"] = None
    else:
        rate = gemm_rate(
            shapes,
            w.batch_size,
            DTYPES[dtype_name],
            min_seconds=0.2 if args.quick else 0.6,
        )
        limit = gemm_limit_seconds(X.shape[0], shapes, rate)
        performed = performed_gemm_seconds(X.shape[0], shapes, rate)
        row["gemm_rate_gflops"] = rate / 1e9
        row["gemm_limit_s_per_epoch"] = limit
        row["gemm_fraction_ours"] = limit / s_ours
        row["gemm_fraction_mlp"] = limit / s_mlp
        row["performed_gemm_fraction_ours"] = performed / s_ours
    if w.predict:
        ptimes = timed_predicts(fit_ours, fit_theirs, X, args.repeats)
        row["predict_s_ours"] = float(np.median(ptimes[0]))
        row["predict_s_mlp"] = float(np.median(ptimes[1]))
        row["predict_ratio"] = row["predict_s_ours"] / row["predict_s_mlp"]
        row["predict_rows_per_s_ours"] = X.shape[0] / row["predict_s_ours"]
    return row


def add_peak_memory(row, w, X, y, args):
    """Peak extra memory of one epoch (one L-BFGS iteration) of each side."""
    if not args.no_memory:
        one_epoch = w.estimators(max_iter=1)
        row["peak_mib_ours"] = peak_fit_memory(one_epoch[0], X, y) / 2**20
        row["peak_mib_mlp"] = peak_fit_memory(one_epoch[1], X, y) / 2**20


def run_lbfgs_row(w, dtype_name, X, y, args):
    """An L-BFGS row: seconds per iteration and final losses of both sides.

    Both fits run ``max_iter`` iterations of scipy's L-BFGS-B from the same
    initial weights; each side's time is divided by its own ``n_iter_`` (they
    should be equal; the table shows both). There is no GEMM fraction: an
    iteration costs one loss-and-gradient evaluation or more (line search),
    and MLP does not say how many it made.
    """
    iters = w.epochs_quick if args.quick else w.epochs
    ours, theirs = w.estimators(max_iter=iters)
    times, (fit_ours, fit_theirs) = timed_fits(ours, theirs, X, y, args.repeats)
    s_ours = float(np.median(times[0])) / fit_ours.n_iter_
    s_mlp = float(np.median(times[1])) / fit_theirs.n_iter_
    loss_ours, loss_mlp = float(fit_ours.loss_), float(fit_theirs.loss_)
    row = {
        "workload": w.name,
        "description": w.description,
        "solver": "lbfgs",
        "dtype": dtype_name,
        "n_samples": X.shape[0],
        "max_iter": iters,
        "n_iter_ours": int(fit_ours.n_iter_),
        "n_iter_mlp": int(fit_theirs.n_iter_),
        "repeats": args.repeats,
        "alpha": w.alpha,
        "in_geomean": False,
        "fit_seconds_ours": times[0],
        "fit_seconds_mlp": times[1],
        "s_per_iter_ours": s_ours,
        "s_per_iter_mlp": s_mlp,
        "ratio": s_ours / s_mlp,
        "loss_ours": loss_ours,
        "loss_mlp": loss_mlp,
        "loss_rel_diff": abs(loss_ours - loss_mlp) / max(abs(loss_mlp), 1e-300),
        **fitted_fields(w, X, y, fit_ours, fit_theirs),
    }
    add_peak_memory(row, w, X, y, args)
    return row


def is_lbfgs(row):
    return row.get("solver") == "lbfgs"


def summarize(rows):
    lbfgs = [r for r in rows if is_lbfgs(r)]
    rows = [r for r in rows if not is_lbfgs(r)]
    main = [r for r in rows if r["in_geomean"]]
    ratios = [r["ratio"] for r in main]
    summary = {
        "geomean_ratio_W1_W4": math.exp(np.mean(np.log(ratios))) if ratios else None,
        "rows_in_geomean": len(ratios),
        "max_ratio": max(r["ratio"] for r in rows) if rows else None,
        "max_ratio_row": max(rows, key=lambda r: r["ratio"])["workload"]
        if rows
        else None,
    }
    for r in rows:
        if r["workload"] in ("W4", "W4-SGD"):
            key = f"{r['workload'].replace('-', '_')}_gemm_fraction_{r['dtype']}"
            summary[key] = r.get("gemm_fraction_ours")
    if rows and "peak_mib_ours" in rows[0]:
        summary["memory_ours_le_mlp_every_row"] = all(
            r["peak_mib_ours"] <= r["peak_mib_mlp"] for r in rows
        )
    if lbfgs:
        worst = max(lbfgs, key=lambda r: r["ratio"])
        summary["lbfgs_max_ratio"] = worst["ratio"]
        summary["lbfgs_max_ratio_row"] = f"{worst['workload']} {worst['dtype']}"
        summary["lbfgs_max_loss_rel_diff"] = max(r["loss_rel_diff"] for r in lbfgs)
        summary["lbfgs_same_n_iter"] = all(
            r["n_iter_ours"] == r["n_iter_mlp"] for r in lbfgs
        )
    return summary


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


COLUMNS = [
    ("row", lambda r: r["workload"], ""),
    ("dtype", lambda r: r["dtype"], ""),
    ("ours s/ep", lambda r: r["s_per_epoch_ours"], ".4f"),
    ("MLP s/ep", lambda r: r["s_per_epoch_mlp"], ".4f"),
    ("ratio", lambda r: r["ratio"], ".3f"),
    ("score ours", lambda r: r["score_ours"], ".4f"),
    ("score MLP", lambda r: r["score_mlp"], ".4f"),
    ("peak MiB ours", lambda r: r.get("peak_mib_ours"), ".1f"),
    ("peak MiB MLP", lambda r: r.get("peak_mib_mlp"), ".1f"),
    ("GEMM frac ours", lambda r: r.get("gemm_fraction_ours"), ".3f"),
    ("GEMM frac MLP", lambda r: r.get("gemm_fraction_mlp"), ".3f"),
]

LBFGS_COLUMNS = [
    ("row", lambda r: r["workload"], ""),
    ("dtype", lambda r: r["dtype"], ""),
    ("iters ours", lambda r: r["n_iter_ours"], "d"),
    ("iters MLP", lambda r: r["n_iter_mlp"], "d"),
    ("ours s/it", lambda r: r["s_per_iter_ours"], ".5f"),
    ("MLP s/it", lambda r: r["s_per_iter_mlp"], ".5f"),
    ("ratio", lambda r: r["ratio"], ".3f"),
    ("loss ours", lambda r: r["loss_ours"], ".6g"),
    ("loss MLP", lambda r: r["loss_mlp"], ".6g"),
    ("score ours", lambda r: r["score_ours"], ".4f"),
    ("score MLP", lambda r: r["score_mlp"], ".4f"),
    ("coefs ours", lambda r: r["coefs_dtype_ours"], ""),
    ("coefs MLP", lambda r: r["coefs_dtype_mlp"], ""),
    ("peak MiB ours", lambda r: r.get("peak_mib_ours"), ".1f"),
    ("peak MiB MLP", lambda r: r.get("peak_mib_mlp"), ".1f"),
]

PREDICT_COLUMNS = [
    ("row", lambda r: r["workload"], ""),
    ("dtype", lambda r: r["dtype"], ""),
    ("rows", lambda r: r["n_samples"], "d"),
    ("ours s", lambda r: r["predict_s_ours"], ".4f"),
    ("MLP s", lambda r: r["predict_s_mlp"], ".4f"),
    ("ratio", lambda r: r["predict_ratio"], ".3f"),
    ("ours rows/s", lambda r: r["predict_rows_per_s_ours"], ".3g"),
]


def table(rows, columns, rst=False):
    """A plain-text table; with ``rst=True`` a reStructuredText simple table."""
    cells = [[name for name, _, _ in columns]]
    for r in rows:
        cells.append([_fmt(get(r), spec) for _, get, spec in columns])
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = [
        "  ".join(
            c.rjust(w) if j > 1 else c.ljust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    if rst:
        rule = "  ".join("=" * w for w in widths)
        return "\n".join([rule, lines[0], rule, *lines[1:], rule])
    rule = "-" * len(lines[0])
    return "\n".join([lines[0], rule, *lines[1:]])


def report(result, rst=False):
    lbfgs_rows = [r for r in result["rows"] if is_lbfgs(r)]
    rows = [r for r in result["rows"] if not is_lbfgs(r)]
    out = [table(rows, COLUMNS, rst)] if rows else []
    predict_rows = [r for r in rows if "predict_s_ours" in r]
    if predict_rows:
        out += [
            "",
            "predict() on the training set:" if not rst else "",
            table(predict_rows, PREDICT_COLUMNS, rst),
        ]
    if lbfgs_rows:
        out += [
            "",
            "L-BFGS (full batch) next to MLP's solver='lbfgs', "
            "seconds per iteration:"
            if not rst
            else "",
            table(lbfgs_rows, LBFGS_COLUMNS, rst),
        ]
    s = result["summary"]
    if rows:
        out += [
            "",
            "geometric mean of the s/epoch ratio over W1-W4 x dtypes "
            f"({s['rows_in_geomean']} rows): "
            f"{_fmt(s['geomean_ratio_W1_W4'], '.3f')}; "
            f"largest ratio {_fmt(s['max_ratio'], '.3f')} "
            f"({s['max_ratio_row']})",
        ]
    if lbfgs_rows:
        out.append(
            f"L-BFGS: largest s/iteration ratio {s['lbfgs_max_ratio']:.3f} "
            f"({s['lbfgs_max_ratio_row']}); final losses within "
            f"{s['lbfgs_max_loss_rel_diff']:.1e} (relative) of MLP's; "
            f"same iteration counts: {s['lbfgs_same_n_iter']}"
        )
    for key in (
        "W4_gemm_fraction_float64",
        "W4_gemm_fraction_float32",
        "W4_SGD_gemm_fraction_float64",
        "W4_SGD_gemm_fraction_float32",
    ):
        if key in s:
            out.append(f"{key}: {_fmt(s[key], '.3f')}")
    if "memory_ours_le_mlp_every_row" in s:
        out.append(
            f"peak memory <= MLP's on every row: {s['memory_ours_le_mlp_every_row']}"
        )
    return "\n".join(out)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="fewer epochs and repeats (< 2 min)"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="fits per estimator, alternating the order (default 5, quick 2)",
    )
    p.add_argument(
        "--only", default=None, help="comma-separated workload names, e.g. W2,W4"
    )
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--no-memory", action="store_true", help="skip the tracemalloc fits")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit BLAS threads (threadpoolctl) for both estimators; default: "
        "leave the BLAS library's own setting",
    )
    p.add_argument(
        "--output",
        default=None,
        help="JSON file (default benchmarks/results/bench-<time>.json, "
        "also copied to latest.json)",
    )
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    return args


def main(argv=None):
    args = parse_args(argv)
    selected = WORKLOADS
    if args.only:
        names = set(args.only.split(","))
        selected = [w for w in WORKLOADS if w.name in names]
    dtypes = args.dtypes.split(",")
    info = machine()
    print(
        f"{info['cpu']} ({info['n_cpus']} CPUs); numpy {info['numpy']}, "
        f"scikit-learn {info['scikit-learn']}, sklearn_bp {info['sklearn_bp']}"
    )
    print(
        "BLAS:",
        ", ".join(
            f"{b['internal_api']} {b['version']} {b['architecture']} "
            f"x{b['num_threads']}"
            for b in info["blas"]
        ),
    )
    if info["OPENBLAS_CORETYPE"]:
        print(
            f"note: OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']} forces that kernel; "
            "unset it (and OPENBLAS_L2_SIZE) to measure numpy's own choice."
        )
    start = time.perf_counter()
    limits = (
        threadpool_limits(limits=args.threads)
        if args.threads
        else contextlib.nullcontext()
    )
    with limits:
        rows = run_all(selected, dtypes, args)
    info["load_average_end"] = os.getloadavg()
    result = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "quick": args.quick,
        "blas_threads": args.threads,
        "seconds": time.perf_counter() - start,
        "machine": info,
        "rows": rows,
    }
    return finish(result, args)


def run_all(selected, dtypes, args):
    rows = []
    data_cache = {}
    for w in selected:
        for dtype_name in dtypes:
            key = (w.make_data, dtype_name)
            if key not in data_cache:  # W2 and W2-L2 share their data
                data_cache[key] = w.make_data(DTYPES[dtype_name])
            X, y = data_cache[key]
            row = run_row(w, dtype_name, X, y, args)
            rows.append(row)
            unit = "iter" if is_lbfgs(row) else "epoch"
            print(
                f"  {w.name:6s} {dtype_name}: "
                f"ours {row[f's_per_{unit}_ours']:.4f} s/{unit}, "
                f"MLP {row[f's_per_{unit}_mlp']:.4f}, ratio {row['ratio']:.3f}",
                flush=True,
            )
    return rows


def finish(result, args):
    rows = result["rows"]
    result["summary"] = summarize(rows)
    print()
    print(report(result))
    print(f"\n({result['seconds']:.0f} s)")
    if args.output:
        path = Path(args.output)
    else:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / time.strftime("bench-%Y%m%d-%H%M%S.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2)
    path.write_text(text)
    path.with_suffix(".rst").write_text(report(result, rst=True) + "\n")
    if not args.output:
        (RESULTS_DIR / "latest.json").write_text(text)
        (RESULTS_DIR / "latest.rst").write_text(report(result, rst=True) + "\n")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
