"""Benchmark sklearn_bp against scikit-learn's MLPClassifier / MLPRegressor.

Usage::

    python benchmarks/run.py            # full run: the measurement
    python benchmarks/run.py --quick    # fewer epochs and repeats (minutes)
    python benchmarks/run.py --smoke    # every kind of row, briefly (for CI)
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

Other rows of issue 17, each in a table of its own: small batches (``W2-bs32``,
next to ``W1``), dropout's cost (``W2-dropout``: ours with ``dropout=0.2``
against MLP without; its ratio over W2's is what dropout adds), prediction on
200,000 rows with W2's and W4's networks (``P-W2``, ``P-W4``: seconds and peak
MiB of ``predict_proba`` and ``predict``), and a whole ``GridSearchCV`` end to
end (``GS-digits``). After them, when torch is installed, the rows W1-W4 and
W2-bs32 are timed again against a plain PyTorch loop doing the same work
(``torch_loop.py``: same network, initial weights, shuffles, loss, batch size,
optimizer and thread count), ours and torch interleaved, in a phase of their
own so that importing torch cannot touch the MLP timings; ``--no-torch`` skips
it. The summary ends with each issue-17 target and its status (PASS, FAIL, or
not measured)::

    python benchmarks/run.py --quick --only W2-bs32,P-W2,GS-digits --dtypes float32

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
from sklearn.base import clone
from sklearn.metrics import accuracy_score, r2_score
from threadpoolctl import threadpool_info, threadpool_limits

import sklearn_bp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import (  # noqa: E402
    _quiet_fit,
    gemm_limit_seconds,
    gemm_rate,
    interleaved,
    is_sparse,
    layer_shapes,
    peak_call_memory,
    peak_fit_memory,
    performed_gemm_seconds,
    timed_calls,
    timed_fits,
    timed_predicts,
)
from torch_loop import TorchLoop, import_torch, max_abs_difference  # noqa: E402
from workloads import PREDICTIONS, SEARCHES, WORKLOADS  # noqa: E402

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
        "kind": "epoch",
        "description": w.description,
        "dtype": dtype_name,
        "n_samples": X.shape[0],
        "batch_size": w.batch_size,
        "ours_params": dict(w.ours_params),
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
        "kind": "lbfgs",
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


def run_prediction_row(p, dtype_name, data, args):
    """``predict_proba`` and ``predict`` of both sides on many rows.

    Both estimators are fitted for one epoch on the workload's data; both
    predict on the same standard-normal rows at scikit-learn's default
    ``working_memory``. Times are medians of interleaved calls; the peak MiB
    of each call is measured in an untimed call (tracemalloc).
    """
    w = p.workload
    X, y = data(w.make_data, dtype_name)
    fitted = [_quiet_fit(est, X, y) for est in w.estimators(max_iter=1)]
    n_rows = p.n_rows_quick if args.quick else p.n_rows
    Xp = np.random.default_rng(0).standard_normal(
        (n_rows, X.shape[1]), dtype=DTYPES[dtype_name]
    )
    row = {
        "workload": p.name,
        "kind": "predict",
        "description": p.description,
        "dtype": dtype_name,
        "n_rows": n_rows,
        "full_size": n_rows == p.n_rows,
        "repeats": args.repeats,
        "working_memory_mib": sklearn.get_config()["working_memory"],
    }
    for method in ("predict_proba", "predict"):
        times = timed_calls(*fitted, method, Xp, args.repeats)
        row[f"{method}_s_ours"] = float(np.median(times[0]))
        row[f"{method}_s_mlp"] = float(np.median(times[1]))
        row[f"{method}_ratio"] = row[f"{method}_s_ours"] / row[f"{method}_s_mlp"]
        if not args.no_memory:
            for side, est in zip(("ours", "mlp"), fitted, strict=True):
                peak = peak_call_memory(lambda e=est, m=method: getattr(e, m)(Xp))
                row[f"{method}_peak_mib_{side}"] = peak / 2**20
    row["same_predictions"] = float(
        np.mean(fitted[0].predict(Xp) == fitted[1].predict(Xp))
    )
    return row


def run_search_row(g, dtype_name, data, args):
    """A whole ``GridSearchCV`` of each side, interleaved, end to end."""
    X, y = data(g.make_data, dtype_name)
    epochs = g.epochs_quick if args.quick else g.epochs
    ours, theirs = g.searches(max_iter=epochs)
    times, (fit_ours, fit_theirs) = timed_fits(ours, theirs, X, y, args.repeats)
    s_ours = float(np.median(times[0]))
    s_mlp = float(np.median(times[1]))
    return {
        "workload": g.name,
        "kind": "search",
        "description": g.description,
        "dtype": dtype_name,
        "n_samples": X.shape[0],
        "epochs": epochs,
        "n_candidates": g.n_candidates,
        "n_fits": g.n_candidates * g.cv + 1,  # the refit on all the data too
        "repeats": args.repeats,
        "search_seconds_ours": times[0],
        "search_seconds_mlp": times[1],
        "s_ours": s_ours,
        "s_mlp": s_mlp,
        "ratio": s_ours / s_mlp,
        "best_score_ours": float(fit_ours.best_score_),
        "best_score_mlp": float(fit_theirs.best_score_),
        "best_params_ours": repr(fit_ours.best_params_),
        "best_params_mlp": repr(fit_theirs.best_params_),
    }


def blas_threads():
    """The BLAS threads numpy runs with now (inside ``--threads``' limits)."""
    counts = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    return max(counts) if counts else 1


def add_torch_columns(rows, workloads, data, args):
    """Time the torch-enabled epoch rows against a plain PyTorch loop.

    A phase of its own, after every MLP timing, because importing torch loads
    its own OpenMP and BLAS thread pools into the process. Ours is timed again
    here, interleaved with torch (``ours, torch, torch, ours, ...``), with the
    same epochs and ``torch.set_num_threads`` set to numpy's BLAS threads.
    Returns a message when the phase is skipped, else ``None``.
    """
    candidates = [
        r
        for r in rows
        if kind(r) == "epoch"
        and workloads[r["workload"]].torch
        and not workloads[r["workload"]].alpha
        and not workloads[r["workload"]].ours_params
    ]
    if args.no_torch:
        return "PyTorch rows skipped (--no-torch)."
    if not candidates:
        return None
    threads = blas_threads()  # before torch brings its own BLAS into the process
    torch, message = import_torch()
    if torch is None:
        return message
    torch.set_num_threads(threads)
    print(f"PyTorch {torch.__version__} on CPU, {threads} thread(s):", flush=True)
    for r in candidates:
        w = workloads[r["workload"]]
        X, y = data(w.make_data, r["dtype"])
        if is_sparse(X):
            continue
        epochs = r["epochs"]
        times, (fit_ours, model) = _against_torch(
            w.estimators(max_iter=epochs)[0],
            TorchLoop(w, X, y, torch),
            X,
            y,
            epochs,
            args.repeats,
        )
        r["torch_version"] = torch.__version__
        r["torch_threads"] = threads
        r["fit_seconds_ours_torch_phase"] = times[0]
        r["fit_seconds_torch"] = times[1]
        r["s_per_epoch_ours_torch_phase"] = float(np.median(times[0])) / epochs
        r["s_per_epoch_torch"] = float(np.median(times[1])) / epochs
        r["ratio_torch"] = r["s_per_epoch_ours_torch_phase"] / r["s_per_epoch_torch"]
        # equal work: both end at the same weights (rounding apart)
        r["torch_max_abs_param_diff"] = max_abs_difference(fit_ours, model)
        print(
            f"  {w.name:10s} {r['dtype']}: ours "
            f"{r['s_per_epoch_ours_torch_phase']:.4f} s/epoch, torch "
            f"{r['s_per_epoch_torch']:.4f}, ours/torch {r['ratio_torch']:.3f}",
            flush=True,
        )
    return None


def _against_torch(ours, loop, X, y, epochs, repeats):
    # One untimed epoch of each first: torch's first loop in a process pays
    # for its lazy set-up (measured: 2.3 s instead of 0.17 s for W1's ten
    # epochs), which would land on one repeat.
    _quiet_fit(clone(ours).set_params(max_iter=1), X, y)
    loop.fit(1)
    return interleaved(
        [lambda: _quiet_fit(clone(ours), X, y), lambda: loop.fit(epochs)], repeats
    )


def is_lbfgs(row):
    return row.get("solver") == "lbfgs"


def kind(row):
    """``"epoch"``, ``"lbfgs"``, ``"predict"`` or ``"search"``."""
    return row.get("kind") or ("lbfgs" if is_lbfgs(row) else "epoch")


def summarize(rows):
    lbfgs = [r for r in rows if is_lbfgs(r)]
    rows = [r for r in rows if kind(r) == "epoch"]
    main = [r for r in rows if r["in_geomean"]]
    ratios = [r["ratio"] for r in main]
    # not W2-dropout: ours does more work there than MLP
    same_work = [r for r in rows if not r.get("ours_params")]
    summary = {
        "geomean_ratio_W1_W4": math.exp(np.mean(np.log(ratios))) if ratios else None,
        "rows_in_geomean": len(ratios),
        "max_ratio": max(r["ratio"] for r in same_work) if same_work else None,
        "max_ratio_row": max(same_work, key=lambda r: r["ratio"])["workload"]
        if same_work
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
    for dtype in DTYPES:
        by_name = {r["workload"]: r for r in rows if r["dtype"] == dtype}
        if "W2" in by_name and "W2-dropout" in by_name:
            summary[f"dropout_cost_{dtype}"] = (
                by_name["W2-dropout"]["ratio"] / by_name["W2"]["ratio"]
            )
    return summary


# Rows of a complete run: W1-W4 in both dtypes.
GEOMEAN_ROWS = 8


def _status(ok):
    return "PASS" if ok else "FAIL"


def _worst(rows, key):
    r = max(rows, key=lambda r: r[key])
    return f"{r[key]:.3f} ({r['workload']} {r['dtype']})"


def _incomplete(rows, expected):
    n = len(rows)
    return "" if n >= expected else f"; only {n} of {expected} rows measured"


def targets(result):
    """Each issue-17 target: ``(target, status, detail)``, status ``"PASS"``,
    ``"FAIL"`` or ``"not measured"``. A status over fewer rows than a complete
    run says so in its detail."""
    rows = result["rows"]
    s = result["summary"]
    epoch = [r for r in rows if kind(r) == "epoch"]
    main = [r for r in epoch if r["in_geomean"]]
    out = []

    name = "1. s/epoch: geomean <= 0.50x MLP over W1-W4 x dtypes, no row > 0.70x"
    if main:
        geo, top = s["geomean_ratio_W1_W4"], max(r["ratio"] for r in main)
        out.append(
            (
                name,
                _status(geo <= 0.50 and top <= 0.70),
                f"geomean {geo:.3f}, largest {_worst(main, 'ratio')}"
                + _incomplete(main, GEOMEAN_ROWS),
            )
        )
    else:
        out.append((name, "not measured", "run W1,W2,W3,W4"))

    name = "2. W4 (Adam) >= 0.90 of the GEMM limit"
    w4 = [r for r in epoch if r["workload"] == "W4" and r.get("gemm_fraction_ours")]
    if w4:
        low = min(w4, key=lambda r: r["gemm_fraction_ours"])
        out.append(
            (
                name,
                _status(low["gemm_fraction_ours"] >= 0.90),
                f"lowest {low['gemm_fraction_ours']:.3f} ({low['dtype']})"
                + _incomplete(w4, 2),
            )
        )
    else:
        out.append((name, "not measured", "run W4"))

    name = "3. small batches (W1, W2-bs32) <= 0.50x MLP"
    small = [r for r in epoch if r["workload"] in ("W1", "W2-bs32")]
    if small:
        out.append(
            (
                name,
                _status(max(r["ratio"] for r in small) <= 0.50),
                f"largest {_worst(small, 'ratio')}" + _incomplete(small, 4),
            )
        )
    else:
        out.append((name, "not measured", "run W1,W2-bs32"))

    name = "4. prediction <= 0.60x MLP, peak MiB <= MLP's"
    pred = [r for r in rows if kind(r) == "predict"]
    if pred:
        ratios = [
            (r[f"{m}_ratio"], f"{r['workload']} {r['dtype']} {m}")
            for r in pred
            for m in ("predict_proba", "predict")
        ]
        top = max(ratios)
        ok = top[0] <= 0.60
        detail = f"largest {top[0]:.3f} ({top[1]})"
        if "predict_proba_peak_mib_ours" in pred[0]:
            memory_ok = all(
                r[f"{m}_peak_mib_ours"] <= r[f"{m}_peak_mib_mlp"]
                for r in pred
                for m in ("predict_proba", "predict")
            )
            ok = ok and memory_ok
            detail += f"; peak <= MLP's on every call: {memory_ok}"
        else:
            detail += "; peak not measured (--no-memory)"
        if not all(r["full_size"] for r in pred):
            detail += f"; {pred[0]['n_rows']:,} rows (--quick), not 200,000"
        out.append((name, _status(ok), detail + _incomplete(pred, 4)))
    else:
        out.append((name, "not measured", "run P-W2,P-W4"))

    name = "5. GridSearchCV end to end <= 0.60x MLP"
    search = [r for r in rows if kind(r) == "search"]
    if search:
        out.append(
            (
                name,
                _status(max(r["ratio"] for r in search) <= 0.60),
                f"largest {_worst(search, 'ratio')}",
            )
        )
    else:
        out.append((name, "not measured", "run GS-digits"))

    name = "6. faster than a plain PyTorch loop on every W1-W4 row"
    vs_torch = [r for r in main if "ratio_torch" in r]
    if vs_torch:
        out.append(
            (
                name,
                _status(max(r["ratio_torch"] for r in vs_torch) < 1.0),
                f"largest ours/torch {_worst(vs_torch, 'ratio_torch')}"
                + _incomplete(vs_torch, GEOMEAN_ROWS),
            )
        )
    else:
        out.append(
            (
                name,
                "not measured",
                result.get("torch_note") or "run W1-W4 with torch installed",
            )
        )

    name = "7. L-BFGS <= 0.60x MLP per iteration, at the same loss"
    if "lbfgs_max_ratio" in s:
        ok = s["lbfgs_max_ratio"] <= 0.60 and s["lbfgs_max_loss_rel_diff"] <= 1e-3
        out.append(
            (
                name,
                _status(ok),
                f"largest {s['lbfgs_max_ratio']:.3f} ({s['lbfgs_max_ratio_row']}); "
                f"losses within {s['lbfgs_max_loss_rel_diff']:.1e} of MLP's",
            )
        )
    else:
        out.append((name, "not measured", "run LB1,LB2"))

    name = "8. fit's peak memory <= MLP's on every row"
    mem = [r for r in rows if kind(r) in ("epoch", "lbfgs") and "peak_mib_ours" in r]
    if mem:
        over = [
            f"{r['workload']} {r['dtype']}"
            for r in mem
            if r["peak_mib_ours"] > r["peak_mib_mlp"]
        ]
        out.append(
            (
                name,
                _status(not over),
                f"above MLP's: {', '.join(over)}" if over else f"{len(mem)} rows",
            )
        )
    else:
        out.append((name, "not measured", "drop --no-memory"))
    return out


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
    ("ours/torch", lambda r: r.get("ratio_torch"), ".3f"),
]

TORCH_COLUMNS = [
    ("row", lambda r: r["workload"], ""),
    ("dtype", lambda r: r["dtype"], ""),
    ("epochs", lambda r: r["epochs"], "d"),
    ("ours s/ep", lambda r: r["s_per_epoch_ours_torch_phase"], ".4f"),
    ("torch s/ep", lambda r: r["s_per_epoch_torch"], ".4f"),
    ("ours/torch", lambda r: r["ratio_torch"], ".3f"),
    ("max |w diff|", lambda r: r["torch_max_abs_param_diff"], ".1e"),
    ("threads", lambda r: r["torch_threads"], "d"),
]

LARGE_PREDICT_COLUMNS = [
    ("row", lambda r: r["workload"], ""),
    ("dtype", lambda r: r["dtype"], ""),
    ("rows", lambda r: r["n_rows"], "d"),
    ("proba ours s", lambda r: r["predict_proba_s_ours"], ".4f"),
    ("proba MLP s", lambda r: r["predict_proba_s_mlp"], ".4f"),
    ("ratio", lambda r: r["predict_proba_ratio"], ".3f"),
    ("predict ours s", lambda r: r["predict_s_ours"], ".4f"),
    ("predict MLP s", lambda r: r["predict_s_mlp"], ".4f"),
    ("ratio", lambda r: r["predict_ratio"], ".3f"),
    ("proba MiB ours", lambda r: r.get("predict_proba_peak_mib_ours"), ".1f"),
    ("proba MiB MLP", lambda r: r.get("predict_proba_peak_mib_mlp"), ".1f"),
    ("predict MiB ours", lambda r: r.get("predict_peak_mib_ours"), ".1f"),
    ("predict MiB MLP", lambda r: r.get("predict_peak_mib_mlp"), ".1f"),
]

SEARCH_COLUMNS = [
    ("row", lambda r: r["workload"], ""),
    ("dtype", lambda r: r["dtype"], ""),
    ("fits", lambda r: r["n_fits"], "d"),
    ("epochs", lambda r: r["epochs"], "d"),
    ("ours s", lambda r: r["s_ours"], ".3f"),
    ("MLP s", lambda r: r["s_mlp"], ".3f"),
    ("ratio", lambda r: r["ratio"], ".3f"),
    ("best CV ours", lambda r: r["best_score_ours"], ".4f"),
    ("best CV MLP", lambda r: r["best_score_mlp"], ".4f"),
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


def _titled(title, rows, columns, rst):
    """A table under its title (the reStructuredText form leaves the title to
    the page that includes it)."""
    return ["", "" if rst else title, table(rows, columns, rst)]


def report(result, rst=False):
    lbfgs_rows = [r for r in result["rows"] if is_lbfgs(r)]
    rows = [r for r in result["rows"] if kind(r) == "epoch"]
    predict_large = [r for r in result["rows"] if kind(r) == "predict"]
    search_rows = [r for r in result["rows"] if kind(r) == "search"]
    torch_rows = [r for r in rows if "ratio_torch" in r]
    out = [table(rows, COLUMNS, rst)] if rows else []
    if torch_rows:
        out += _titled(
            "A plain PyTorch loop on CPU, same work (ours timed again, "
            "interleaved with torch):",
            torch_rows,
            TORCH_COLUMNS,
            rst,
        )
    if predict_large:
        out += _titled(
            "predict_proba / predict on many rows (default working_memory), "
            "seconds and peak MiB:",
            predict_large,
            LARGE_PREDICT_COLUMNS,
            rst,
        )
    if search_rows:
        out += _titled(
            "GridSearchCV (StandardScaler + estimator) end to end:",
            search_rows,
            SEARCH_COLUMNS,
            rst,
        )
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
            "L-BFGS (full batch) next to MLP's solver='lbfgs', seconds per iteration:"
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
    for dtype in DTYPES:
        if f"dropout_cost_{dtype}" in s:
            out.append(
                f"dropout's cost ({dtype}): W2-dropout's ratio / W2's = "
                f"{s[f'dropout_cost_{dtype}']:.3f}"
            )
    if result.get("torch_note"):
        out.append(result["torch_note"])
    if "targets" in s and rst:
        out += [""] + [
            f"- target {name}: **{status}** ({detail})"
            for name, status, detail in s["targets"]
        ]
    elif "targets" in s:
        out += ["", "issue 17 targets:"]
        width = max(len(name) for name, _, _ in s["targets"])
        out += [
            f"  {name.ljust(width)}  {status:12s} {detail}"
            for name, status, detail in s["targets"]
        ]
    return "\n".join(out)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="fewer epochs and repeats (minutes)"
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a check that every kind of row runs, not a measurement: --quick "
        "with 1 repeat on the rows " + ",".join(SMOKE_ROWS) + " (unless --only "
        "names others); writes no latest.json (well under 2 min on 2 cores)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="fits per estimator, alternating the order (default 5, quick 2)",
    )
    p.add_argument(
        "--only",
        default=None,
        help="comma-separated row names, e.g. W2,W4 (all: "
        + ",".join(w.name for w in ALL_ROWS)
        + ")",
    )
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--no-memory", action="store_true", help="skip the tracemalloc fits")
    p.add_argument(
        "--no-torch",
        action="store_true",
        help="skip the PyTorch loop (it is skipped anyway when torch is absent)",
    )
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
    if args.smoke:
        args.quick = True
        args.only = args.only or ",".join(SMOKE_ROWS)
        if args.repeats is None:
            args.repeats = 1
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    return args


ALL_ROWS = [*WORKLOADS, *PREDICTIONS, *SEARCHES]
# One cheap row of each kind (epochs with the torch loop, L-BFGS, prediction,
# search): --smoke runs every code path of this script in well under 2 minutes.
SMOKE_ROWS = ["W1", "LB1", "P-W2", "GS-digits"]


def main(argv=None):
    args = parse_args(argv)
    selected = ALL_ROWS
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {w.name for w in ALL_ROWS})
        if unknown:
            raise SystemExit(
                f"--only: unknown row(s) {', '.join(unknown)}; rows: "
                + ", ".join(w.name for w in ALL_ROWS)
            )
        selected = [w for w in ALL_ROWS if w.name in set(names)]
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
        rows, torch_note = run_all(selected, dtypes, args)
    info["load_average_end"] = os.getloadavg()
    result = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "quick": args.quick,
        "smoke": args.smoke,
        "blas_threads": args.threads,
        "seconds": time.perf_counter() - start,
        "machine": info,
        "torch_note": torch_note,
        "rows": rows,
    }
    return finish(result, args)


def run_all(selected, dtypes, args):
    """Every selected row in every dtype, then the PyTorch phase; the rows and
    a note when the PyTorch phase was skipped."""
    rows = []
    data_cache = {}

    def data(make_data, dtype_name):
        key = (make_data, dtype_name)
        if key not in data_cache:  # W2, W2-L2, W2-bs32, P-W2... share their data
            data_cache[key] = make_data(DTYPES[dtype_name])
        return data_cache[key]

    for w in selected:
        for dtype_name in dtypes:
            row_kind = getattr(w, "kind", None)
            if row_kind == "predict":
                row = run_prediction_row(w, dtype_name, data, args)
                progress = (
                    f"predict_proba ratio {row['predict_proba_ratio']:.3f}, "
                    f"predict ratio {row['predict_ratio']:.3f}"
                )
            elif row_kind == "search":
                row = run_search_row(w, dtype_name, data, args)
                progress = (
                    f"ours {row['s_ours']:.3f} s, MLP {row['s_mlp']:.3f} s, "
                    f"ratio {row['ratio']:.3f}"
                )
            else:
                row = run_row(w, dtype_name, *data(w.make_data, dtype_name), args)
                unit = "iter" if is_lbfgs(row) else "epoch"
                progress = (
                    f"ours {row[f's_per_{unit}_ours']:.4f} s/{unit}, "
                    f"MLP {row[f's_per_{unit}_mlp']:.4f}, ratio {row['ratio']:.3f}"
                )
            rows.append(row)
            print(f"  {w.name:10s} {dtype_name}: {progress}", flush=True)
    workloads = {w.name: w for w in WORKLOADS}
    torch_note = add_torch_columns(rows, workloads, data, args)
    if torch_note:
        print(torch_note, flush=True)
    return rows, torch_note


def finish(result, args):
    rows = result["rows"]
    result["summary"] = summarize(rows)
    result["summary"]["targets"] = targets(result)
    print()
    print(report(result))
    print(f"\n({result['seconds']:.0f} s)")
    if args.output:
        path = Path(args.output)
    else:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stem = "smoke" if args.smoke else "bench"
        path = RESULTS_DIR / time.strftime(f"{stem}-%Y%m%d-%H%M%S.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2)
    path.write_text(text)
    path.with_suffix(".rst").write_text(report(result, rst=True) + "\n")
    if not args.output and not args.smoke:  # a smoke run measures nothing
        (RESULTS_DIR / "latest.json").write_text(text)
        (RESULTS_DIR / "latest.rst").write_text(report(result, rst=True) + "\n")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
