"""Cost of selection (ours vs fuse-all vs the authors' loop structure) and scaling in n and M."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from scipy.special import log_ndtr
from sklearn.datasets import make_classification
from sklearn.impute import KNNImputer, SimpleImputer

from dymo_sklearn import DyMoClassifier
from dymo_sklearn.datasets import apply_missing, make_multiview_digits
from dymo_sklearn.recovery import KNNRecoverer, fit_recoverer, recover

from .common import PeakRSS, best_time, candidates_of, make_model


# ------------------------------------------------------------------ the authors' loop structure
def authors_loop_predict(model, X):
    """DyMo selection written the way the authors' code is structured, on the fitted network.

    Per step and per candidate modality: one full forward pass (all encoders + fusion) of the
    current state and one of the state with the candidate, then max-probability and ICS computed
    sample by sample in a Python loop; the probability reward of the released code. Uses only
    public pieces of the fitted estimator.
    """
    network = model.net_.module_.eval()
    names = model.modalities_
    arrays = {name: np.asarray(X[name], dtype=np.float32) for name in names}
    recovered = recover(model.recoverer_, arrays)
    n, n_modalities = len(next(iter(arrays.values()))), len(names)
    prototypes = model.prototypes_.astype(np.float64)
    subset_prototypes, sigma, codes = model.subset_prototypes_, model.ics_sigma_, model.subset_codes_
    cosine = model.distance == "cosine"
    t = model.temperature

    def forward(taken):
        tokens, present = [], []
        with torch.no_grad():
            for index, name in enumerate(names):
                values = np.where(taken[:, index].reshape(-1, *[1] * (arrays[name].ndim - 1)),
                                  recovered[name], arrays[name])
                values = torch.as_tensor(values)
                observed = ~torch.isnan(values)
                tokens.append(network.encode_modality(index, torch.nan_to_num(values, nan=0.0), observed))
                present.append(observed.flatten(1).any(dim=1))
            present = torch.stack(present, dim=1)
            logits, z = network.heads(network.fuse(torch.cat(tokens, dim=1), present))
        return logits.numpy(), z.double().numpy(), present.numpy()

    def distance(a, b):
        if cosine:
            return 1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)
        return float(((a - b) ** 2).sum())

    def assess(z, present):
        confidence, log_ics = np.empty(n), np.empty(n)
        for i in range(n):  # per-sample loop, as in the released code
            d = np.array([distance(z[i], c) for c in prototypes])
            logits = -d / t
            p = np.exp(logits - logits.max())
            p /= p.sum()
            k = int(p.argmax())
            confidence[i] = p[k]
            code = int(sum(1 << m for m in range(n_modalities) if present[i, m]))
            row = int(np.searchsorted(codes, code))
            row = row if row < len(codes) and codes[row] == code else len(codes)
            ratio = distance(z[i], subset_prototypes[row, k].astype(np.float64)) / sigma[row, k]
            log_ics[i] = min(0.0, math.log(2.0) + float(log_ndtr(-ratio)))
        return confidence, log_ics

    candidates = candidates_of(arrays)
    active = candidates.copy()
    selected = np.zeros_like(candidates)
    while active.any():
        rewards = np.full((n, n_modalities), -np.inf)
        for m in range(n_modalities):
            if not active[:, m].any():
                continue
            _, z_now, present_now = forward(selected)
            s_now, g_now = assess(z_now, present_now)
            trial = selected.copy()
            trial[:, m] |= active[:, m]
            _, z_new, present_new = forward(trial)
            s_new, g_new = assess(z_new, present_new)
            drops = g_new < g_now
            if cosine:
                gain = np.where(drops, g_now / np.where(drops, g_new, -1.0), 1.0)
            else:
                gain = np.where(drops, np.exp(g_new - g_now), 1.0)
            reward = s_new * np.clip(gain, 0.0, 1.0) - s_now
            rewards[:, m] = np.where(active[:, m], reward, -np.inf)
        best = rewards.argmax(axis=1)
        best_value = rewards[np.arange(n), best]
        accept = active.any(axis=1) & (best_value > 0)
        active &= rewards > 0
        active[accept, best[accept]] = False
        selected[accept, best[accept]] = True
    logits, _, _ = forward(selected)
    return model.classes_[logits.argmax(axis=1)]


def selection_cost(seed, quick, log):
    """Predict wall time, dymo vs all, M = 5, missing rate 0.8, one batch of 1,024 samples."""
    n_train = 600 if quick else 1500
    X, y = make_multiview_digits(5, n_samples=n_train + 1024, background=1.0, random_state=seed)
    train = {name: np.asarray(a)[:n_train] for name, a in X.items()}
    test = {name: np.asarray(a)[n_train:] for name, a in X.items()}
    model = make_model("polymnist_digits", distance="cosine", temperature=0.1, seed=seed, quick=quick,
                       recoverer=SimpleImputer(), predict_batch_size=1024,
                       acceptance_threshold=0.0)
    model.fit(train, y[:n_train])
    epoch_s = float(np.mean([row["dur"] for row in model.net_.history]))
    X_missing = apply_missing(test, 0.8, random_state=seed)
    arrays = {name: np.asarray(a) for name, a in X_missing.items()}
    repeats = 3 if quick else 5
    out = {"n": 1024, "n_modalities": 5, "missing_rate": 0.8, "recoverer": "SimpleImputer",
           "torch_threads": torch.get_num_threads(), "fit_epoch_s": epoch_s}
    out["recover_s"], _ = best_time(lambda: recover(model.recoverer_, arrays), repeats)
    network = model.net_.module_
    for mode in ("none", "all", "dymo"):
        for reward in (("log", "prob") if mode == "dymo" else ("log",)):
            model.set_params(selection=mode, reward=reward)
            seconds, _ = best_time(lambda: model.predict(X_missing), repeats)
            network.pass_counts.clear()
            model.predict(X_missing)
            key = mode if mode != "dymo" else f"dymo_{reward}"
            out[f"{key}_s"] = seconds
            out[f"{key}_passes"] = dict(network.pass_counts)
    model.set_params(selection="dymo", reward="prob")
    ours = model.predict(X_missing)
    network.pass_counts.clear()
    start = time.perf_counter()
    theirs = authors_loop_predict(model, X_missing)
    out["authors_loop_s"] = time.perf_counter() - start
    out["authors_loop_passes"] = dict(network.pass_counts)
    out["authors_vs_ours_prediction_agreement"] = float(np.mean(ours == theirs))
    out["ratio_dymo_log_vs_all"] = out["dymo_log_s"] / out["all_s"]
    out["ratio_dymo_prob_vs_all"] = out["dymo_prob_s"] / out["all_s"]
    out["ratio_selection_only_log"] = (out["dymo_log_s"] - out["recover_s"]) / (out["all_s"] - out["recover_s"])
    out["speedup_vs_authors_loop"] = out["authors_loop_s"] / out["dymo_prob_s"]
    log(f"[cost] all {out['all_s']:.3f}s dymo/log {out['dymo_log_s']:.3f}s dymo/prob {out['dymo_prob_s']:.3f}s "
        f"authors {out['authors_loop_s']:.2f}s agreement {out['authors_vs_ours_prediction_agreement']:.3f}")
    return out


# ------------------------------------------------------------------------------------ scaling
def _tabular(n_samples, n_modalities, width, seed):
    X, y = make_classification(n_samples=n_samples, n_features=n_modalities * width,
                               n_informative=max(2, n_modalities * width // 2), n_redundant=0,
                               n_classes=3, n_clusters_per_class=1, random_state=seed)
    X = X.astype(np.float32)
    return {f"v{m}": X[:, m * width:(m + 1) * width] for m in range(n_modalities)}, y


def _small_tabular_model(seed, epochs):
    return DyMoClassifier(recoverer=SimpleImputer(), acceptance_threshold=0.0, d_model=32, n_heads=4, n_layers=2, projection_dim=16,
                          lr=3e-3, max_epochs=epochs, early_stopping=False, device="cpu", random_state=seed)


def scaling_n(seed, quick, log):
    """Predict time and memory vs n; each (n, mode) runs in a fresh process (benchmarks.memprobe),
    so freed memory of earlier steps cannot hide growth."""
    import json
    import pickle
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    sizes = (1_000, 10_000) if quick else (1_000, 3_000, 10_000, 30_000, 100_000)
    X, y = _tabular(2000, 3, 10, seed)
    model = _small_tabular_model(seed, 3).fit(X, y)
    rows = []
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pkl"
        with open(path, "wb") as handle:
            pickle.dump(model, handle)
        for n in sizes:
            for mode in ("all", "dymo"):
                output = subprocess.run([sys.executable, "-m", "benchmarks.memprobe", str(path), str(n), mode, str(seed)],
                                        cwd=root, capture_output=True, text=True, check=True).stdout
                row = dict(n=n, mode=mode, **json.loads(output.strip().splitlines()[-1]))
                rows.append(row)
                log(f"[scaling n] n={n} {mode}: {row['predict_s']:.2f}s, RSS +{row['peak_rss_delta_mb']:.1f} MiB, "
                    f"traced {row['tracemalloc_peak_mb']:.1f} MiB (input {row['input_mb']:.1f} MiB)")
    return rows


def scaling_m(seed, quick, log):
    counts = (2, 4, 8) if quick else (2, 4, 6, 8, 10, 12)
    rows = []
    for n_modalities in counts:
        X, y = _tabular(1000 + 1024, n_modalities, 4, seed)
        train = {k: v[:1000] for k, v in X.items()}
        test = apply_missing({k: v[1000:] for k, v in X.items()}, 0.8, random_state=seed)
        start = time.perf_counter()
        model = _small_tabular_model(seed, 1 if quick else 3).fit(train, y[:1000])
        fit_s = time.perf_counter() - start
        epoch_s = float(np.mean([row["dur"] for row in model.net_.history]))
        row = dict(n_modalities=n_modalities, fit_s=fit_s, epoch_s=epoch_s,
                   statistics_s=fit_s - sum(r["dur"] for r in model.net_.history),
                   n_fitted_subsets=int(len(model.subset_codes_)),
                   statistics_mb=(model.subset_prototypes_.nbytes + model.ics_sigma_.nbytes) / 2**20)
        for mode in ("all", "dymo"):
            model.set_params(selection=mode)
            model.predict({k: v[:64] for k, v in test.items()})
            model.net_.module_.pass_counts.clear()
            with PeakRSS() as memory:
                start = time.perf_counter()
                model.predict(test)
                row[f"{mode}_s"] = time.perf_counter() - start
            row[f"{mode}_peak_rss_delta_mb"] = memory.delta / 2**20
            row[f"{mode}_fusion_rows"] = int(model.net_.module_.pass_counts["fusion"])
        rows.append(row)
        log(f"[scaling M] M={n_modalities}: fit {fit_s:.1f}s, all {row['all_s']:.3f}s, dymo {row['dymo_s']:.3f}s, "
            f"{row['n_fitted_subsets']} subsets")
    return rows


# ------------------------------------------------------------------ predict-path ratios (issue 12)
def predict_ratios(seed=0, n_train=1500, n_test=4096, repeats=3, device="cpu"):
    """Predict wall times measured in one run, and the two ratios the predict path is held to.

    R1 = predict(dymo, default recoverer) / predict(none, mean imputation): the price of DyMo
    over plain discarding. R2 = predict(dymo) / predict(all), same recoverer: the price of
    selection over fusing everything. M = 5, η = 0.8, PolyMNIST-like digits, one network.
    """
    X, y = make_multiview_digits(5, n_samples=n_train + n_test, background=1.0, random_state=seed)
    train = {name: np.asarray(a)[:n_train] for name, a in X.items()}
    test = apply_missing({name: np.asarray(a)[n_train:] for name, a in X.items()}, 0.8, random_state=seed)
    model = make_model("polymnist_digits", distance="cosine", temperature=0.1, seed=seed, quick=False,
                       recoverer=SimpleImputer(), predict_batch_size=1024, device=device)
    model.fit(train, y[:n_train])
    default = KNNRecoverer(n_neighbors=5, device=device)  # the default recoverer
    fitted = {"mean": model.recoverer_, "default": fit_recoverer(default, train),
              "KNNImputer": fit_recoverer(KNNImputer(), train)}
    network = model.net_.module_
    seconds, passes = {}, {}
    # scikit-learn's KNNImputer (the previous default) is timed once: it takes tens of seconds.
    for recoverer, selection in [("mean", "none"), ("default", "none"), ("default", "all"), ("default", "dymo"),
                                 ("KNNImputer", "dymo")]:
        model.recoverer_ = fitted[recoverer]
        model.set_params(selection=selection)
        key = f"{selection}, {recoverer}"
        calls = 1 + (1 if recoverer == "KNNImputer" else repeats)
        network.pass_counts.clear()
        seconds[key], _ = best_time(lambda: model.predict(test), calls - 1)
        passes[key] = {name: count // calls for name, count in network.pass_counts.items()}
    for recoverer in ("default", "KNNImputer"):
        seconds[f"recover only, {recoverer}"], _ = best_time(lambda: recover(fitted[recoverer], test),
                                                             1 if recoverer == "KNNImputer" else repeats)
    ratios = {"R1 = dymo (default recoverer) / none (mean imputation)": seconds["dymo, default"] / seconds["none, mean"],
              "R2 = dymo / all (default recoverer)": seconds["dymo, default"] / seconds["all, default"],
              "dymo (KNNImputer) / none (mean imputation)": seconds["dymo, KNNImputer"] / seconds["none, mean"]}
    return dict(n_train=n_train, n_test=n_test, n_modalities=5, missing_rate=0.8, device=str(model.net_.device),
                default_recoverer=repr(default), torch_threads=torch.get_num_threads(), seconds=seconds,
                passes=passes, ratios=ratios)


def _ratios_markdown(result, command):
    lines = [f"`{command}` — M = {result['n_modalities']}, η = {result['missing_rate']}, {result['n_test']:,} test "
             f"samples in batches of 1,024, {result['n_train']:,} training samples, device {result['device']}, "
             f"{result['torch_threads']} torch thread(s); default recoverer `{result['default_recoverer']}`.", "",
             "| predict | seconds | encoder rows | fusion rows |", "|---|---|---|---|"]
    for key, value in result["seconds"].items():
        counts = result["passes"].get(key, {})
        encoders = sum(v for k, v in counts.items() if k.startswith("encoder"))
        lines.append(f"| {key} | {value:.3f} | {encoders if counts else ''} | {counts.get('fusion', '')} |")
    lines += ["", "| ratio | value |", "|---|---|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in result["ratios"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    import argparse
    import json
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(description=predict_ratios.__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-test", type=int, default=4096)
    parser.add_argument("--out", default="build/benchmarks", help="folder of cost.json and cost.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = predict_ratios(n_test=args.n_test, device=args.device)
    command = "python -m benchmarks.cost " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cost.json").write_text(json.dumps(result, indent=1))
    markdown = _ratios_markdown(result, command.strip())
    (out / "cost.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
