"""GPU smoke check: train and select on CUDA, determinism, dymo/all predict cost, CUDA pickle.

Run on a machine with a GPU: ``python benchmarks/gpu_smoke.py OUTDIR``. Writes
``OUTDIR/cuda_model.pkl`` and ``OUTDIR/cuda_model/`` (a tiny model fitted on CUDA, pickled and
saved, for the CPU-loading tests in ``tests/data``) and prints a summary.
"""

import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.impute import SimpleImputer

from dymo_sklearn import DyMoClassifier
from dymo_sklearn.datasets import apply_missing, make_multiview_digits


def timed_predict(clf, X, repeats=5):
    clf.predict_proba(X)  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        clf.predict_proba(X)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    print("device:", torch.cuda.get_device_name(0))
    X, y = make_multiview_digits(5, n_samples=5000, background=1.0, random_state=0)
    train, test = np.arange(4000), np.arange(4000, 5000)
    params = dict(recoverer=SimpleImputer(), device="cuda", random_state=0, max_epochs=20)
    start = time.perf_counter()
    clf = DyMoClassifier(**params).fit(X[train], y[train])
    print(f"fit on cuda: {time.perf_counter() - start:.1f} s, {len(clf.net_.history)} epochs")
    again = DyMoClassifier(**params).fit(X[train], y[train])
    X_test = apply_missing(X[test], 0.8, random_state=1)
    same = np.array_equal(clf.predict_proba(X_test), again.predict_proba(X_test))
    print("same seed, same device -> identical probabilities:", same)
    for selection in ("none", "all", "dymo"):
        clf.set_params(selection=selection)
        print(f"accuracy eta=0.8 {selection}: {clf.score(X_test, y[test]):.3f}")

    big = apply_missing(X[np.resize(test, 8192)], 0.8, random_state=2)
    times = {}
    for selection in ("all", "dymo"):
        clf.set_params(selection=selection, predict_batch_size=1024)
        times[selection] = timed_predict(clf, big)
    print("predict 8192 samples, batch 1024: " + ", ".join(f"{k} {v:.3f} s" for k, v in times.items())
          + f"; dymo/all ratio: {times['dymo'] / times['all']:.2f}")

    small, small_y = make_multiview_digits(2, n_samples=360, background=1.0, random_state=0)
    tiny = DyMoClassifier(recoverer=SimpleImputer(), device="cuda", random_state=0, max_epochs=2,
                          d_model=16, n_heads=2, n_layers=1, projection_dim=8)
    tiny.fit(small[:300], small_y[:300])
    with open(out / "cuda_model.pkl", "wb") as handle:
        pickle.dump(tiny, handle)
    tiny.save(out / "cuda_model")
    test = small[300:340]
    np.savez_compressed(out / "cuda_model_input.npz", **{name: test[name] for name in test})
    np.save(out / "cuda_model_proba.npy", tiny.predict_proba(test))
    print("wrote", out / "cuda_model.pkl", out / "cuda_model")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu_out")
