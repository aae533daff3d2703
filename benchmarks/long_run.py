"""Long runs and large predictions: memory stays flat and bounded.

Usage::

    python benchmarks/long_run.py      # 100,000 partial_fit calls, 10^6 x 100
    python benchmarks/long_run.py --calls 20000 --rows 200000   # quicker

Part 1 runs 100,000 ``partial_fit`` calls on batches of 5 rows (classifier and
regressor) and reports the process's resident memory (RSS) along the way, the
time per call, and the consistency of ``n_iter_``, ``t_`` and ``loss_curve_``.
The only growth allowed is ``loss_curve_`` itself (one float per call, ~33
bytes: ~3.3 MB over the run).

Part 2 predicts on a 10^6 x 100 float64 input with a (512, 64) network under
``sklearn.config_context(working_memory=...)`` and reports the peak memory
traced during each prediction method, beyond its output, next to what an
unchunked pass would hold (10^6 x 512 x 8 bytes = 4 GB for the first hidden
layer): the extra peak follows ``working_memory``, not ``n_samples x width``.
Results are printed and written as JSON to ``benchmarks/results/``.
"""

import argparse
import gc
import json
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from sklearn import config_context
from threadpoolctl import threadpool_limits

from sklearn_bp import BackpropClassifier, BackpropRegressor

MiB = 2**20


def rss_bytes():
    """Resident set size (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def long_partial_fit(Estimator, n_calls, report_every):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((1000, 10))
    if Estimator is BackpropClassifier:
        y = (X[:, 0] + X[:, 1] > 0).astype(int)
        first = {"classes": [0, 1]}
    else:
        y = X[:, 0] - 2 * X[:, 1]
        first = {}
    est = Estimator(hidden_layer_sizes=(32,), random_state=0, learning_rate_init=1e-3)
    batches = [slice(i, i + 5) for i in range(0, len(X), 5)]
    est.partial_fit(X[:5], y[:5], **first)
    for i in range(999):  # warm-up
        s = batches[i % len(batches)]
        est.partial_fit(X[s], y[s])
    gc.collect()
    rss0 = rss_bytes()
    trace = []
    start = time.perf_counter()
    for i in range(n_calls):
        s = batches[i % len(batches)]
        est.partial_fit(X[s], y[s])
        if (i + 1) % report_every == 0:
            gc.collect()
            trace.append((i + 1, (rss_bytes() - rss0) / MiB))
            print(f"  {Estimator.__name__}: {i + 1:>7} calls, "
                  f"RSS {trace[-1][1]:+.1f} MiB, loss_ {est.loss_:.4f}", flush=True)
    seconds = time.perf_counter() - start
    total = 1000 + n_calls
    consistent = (est.n_iter_ == total == len(est.loss_curve_)
                  and est.t_ == 5 * total
                  and bool(np.all(np.isfinite(est.loss_curve_))))
    return {
        "estimator": Estimator.__name__,
        "calls": n_calls,
        "ms_per_call": 1e3 * seconds / n_calls,
        "rss_growth_mib": trace[-1][1],
        "rss_trace_mib": trace,
        "loss_curve_mib": 33 * total / MiB,
        "attributes_consistent": consistent,
        "first_loss": est.loss_curve_[0],
        "last_loss": est.loss_,
    }


def chunked_predict(n_rows, working_memory_mib):
    rng = np.random.RandomState(0)
    clf = BackpropClassifier(hidden_layer_sizes=(512, 64), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(rng.standard_normal((2000, 100)), rng.randint(0, 3, 2000))
    X = rng.standard_normal((n_rows, 100))
    rows = []
    for method in ["predict_proba", "predict_log_proba", "predict", "transform"]:
        fn = getattr(clf, method)
        with config_context(working_memory=working_memory_mib):
            fn(X[:10])
            gc.collect()
            tracemalloc.start()
            start = time.perf_counter()
            out = fn(X)
            seconds = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        rows.append({
            "method": method,
            "rows": n_rows,
            "working_memory_mib": working_memory_mib,
            "output_mib": out.nbytes / MiB,
            "peak_mib": peak / MiB,
            "peak_beyond_output_mib": (peak - out.nbytes) / MiB,
            "unchunked_hidden_mib": n_rows * 512 * 8 / MiB,
            "seconds": seconds,
        })
        print(f"  {method:>17}: output {rows[-1]['output_mib']:.1f} MiB, peak beyond "
              f"it {rows[-1]['peak_beyond_output_mib']:.1f} MiB "
              f"(unchunked hidden layer: {rows[-1]['unchunked_hidden_mib']:.0f} MiB), "
              f"{seconds:.1f} s", flush=True)
        del out
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--working-memory", type=float, nargs="+", default=[16, 64])
    args = parser.parse_args()
    results = {"partial_fit": [], "predict": []}
    with threadpool_limits(limits=1):
        print(f"Part 1: {args.calls} partial_fit calls on 5-row batches")
        for Estimator in (BackpropRegressor, BackpropClassifier):
            results["partial_fit"].append(
                long_partial_fit(Estimator, args.calls, max(1, args.calls // 10))
            )
        for wm in args.working_memory:
            print(f"Part 2: predictions on {args.rows} x 100, working_memory={wm} MiB")
            results["predict"] += chunked_predict(args.rows, wm)
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / "long_run.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"written to {path}")
    for r in results["partial_fit"]:
        print(f"{r['estimator']}: {r['calls']} calls, {r['ms_per_call']:.2f} ms/call, "
              f"RSS growth {r['rss_growth_mib']:.1f} MiB (loss_curve_ itself "
              f"{r['loss_curve_mib']:.1f} MiB), attributes consistent: "
              f"{r['attributes_consistent']}")


if __name__ == "__main__":
    main()
