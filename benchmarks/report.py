"""Turn the raw benchmark records into benchmarks/results/benchmarks.md tables and PNG plots."""

from __future__ import annotations

import numpy as np
import pandas as pd

MAIN_METHODS = ["none", "all", "simultaneous/log", "iterative/log", "dymo/log", "simultaneous/prob",
                "iterative/prob", "dymo/prob", "oracle"]
# Rows of the held-out-threshold comparison (benchmarks/accuracy.py).
AUTO_METHODS = ["dymo/log auto", "dymo/log thr=0, auto net", "none, auto net", "all, auto net"]
DATASET_TITLES = {
    "polymnist_digits": "PolyMNIST-like, scikit-learn digits (M = 5, 8x8, background 1.0)",
    "polymnist_mnist": "PolyMNIST-like, real MNIST (M = 5, 14x14, background 1.0, disjoint train/test digit pools)",
    "breast_cancer": "Breast cancer, 3 views (mean / SE / worst), standardised",
}


def pm(values):
    values = np.asarray(values, dtype=float) * 100
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{values.mean():.1f} ± {values.std(ddof=0):.1f}"


def rate_label(rate, dataset):
    if dataset == "breast_cancer":
        return f"{int(round(rate * 3))}/3 missing"
    return f"η={rate:.1f}"


def accuracy_table(frame, dataset, config, recoverer, methods):
    part = frame[(frame.dataset == dataset) & (((frame.config == config) & (frame.recoverer == recoverer))
                                               | (frame.config == "baseline"))]
    rates = sorted(part.rate.unique())
    header = "| method | " + " | ".join(rate_label(r, dataset) for r in rates) + " |"
    lines = [header, "|" + "---|" * (len(rates) + 1)]
    for method in methods + sorted(part[part.config == "baseline"].method.unique()):
        cells = []
        for rate in rates:
            values = part[(part.method == method) & (part.rate == rate)].accuracy
            cells.append(pm(values) if len(values) else "–")
        if all(c == "–" for c in cells):
            continue
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_acc(frame, **where):
    part = frame
    for key, value in where.items():
        part = part[part[key] == value]
    return part.accuracy.mean() if len(part) else np.nan


def plot_accuracy(frame, dataset, config, recoverer, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = frame[(frame.dataset == dataset) & (frame.config == config) & (frame.recoverer == recoverer)]
    base = frame[(frame.dataset == dataset) & (frame.config == "baseline")]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    styles = {"none": "k--", "all": "r--", "simultaneous/log": "c-", "iterative/log": "b-", "dymo/log": "g-o",
              "dymo/prob": "g:s", "oracle": "m-."}
    for method, style in styles.items():
        stats = part[part.method == method].groupby("rate").accuracy.agg(["mean", "std"])
        if len(stats):
            ax.errorbar(stats.index, stats["mean"] * 100, yerr=stats["std"].fillna(0) * 100, fmt=style,
                        label=method, capsize=2)
    for method in sorted(base.method.unique()):
        stats = base[base.method == method].groupby("rate").accuracy.mean()
        ax.plot(stats.index, stats.values * 100, ":", color="gray", alpha=0.8)
        ax.annotate(method, (stats.index[-1], stats.values[-1] * 100), fontsize=6, color="gray")
    ax.set_xlabel("test missing rate (fraction of modalities missing per sample)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{dataset}: {config}, recoverer {recoverer}", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaling(scaling_n, scaling_m, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    n_frame = pd.DataFrame(scaling_n)
    for mode, style in (("all", "r-o"), ("dymo", "g-o")):
        part = n_frame[n_frame["mode"] == mode]
        axes[0].loglog(part.n, part.predict_s, style, label=mode)
        axes[1].semilogx(part.n, part.peak_rss_delta_mb, style, label=f"{mode}: peak RSS growth")
    part = n_frame[n_frame["mode"] == "dymo"]
    axes[1].semilogx(part.n, part.input_mb, "k:", label="size of the input arrays")
    if "tracemalloc_peak_mb" in part:
        axes[1].semilogx(part.n, part.tracemalloc_peak_mb, "b--", label="tracemalloc peak (numpy)")
    axes[0].set(xlabel="n samples (3 tabular views, 2 of 3 missing)", ylabel="predict time (s)")
    axes[1].set(xlabel="n samples", ylabel="MiB")
    m_frame = pd.DataFrame(scaling_m)
    axes[2].plot(m_frame.n_modalities, m_frame.all_s, "r-o", label="predict all")
    axes[2].plot(m_frame.n_modalities, m_frame.dymo_s, "g-o", label="predict dymo")
    axes[2].plot(m_frame.n_modalities, m_frame.fit_s, "b-s", label="fit (incl. statistics)")
    axes[2].set(xlabel="M modalities (1,024 samples, η = 0.8)", ylabel="seconds")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def best_of_baselines(frame, dataset, config, recoverer, rate, methods=("none", "all")):
    part = frame[(frame.dataset == dataset) & (frame.config == config) & (frame.recoverer == recoverer)
                 & (frame.rate == rate)]
    return max(part[part.method == m].accuracy.mean() for m in methods)


def defaults_analysis(frame):
    """Rank candidate defaults: mean accuracy of the selection rule over every data set, seed and
    missing rate > 0, and its worst deficit against the better of none/all at any (data set, rate)."""
    rows = []
    frame = frame[(frame.rate > 0) & (frame.config != "baseline")]
    combos = frame[frame.method.str.startswith(("dymo", "iterative", "simultaneous"))][
        ["dataset", "config", "recoverer", "method"]].drop_duplicates()
    for _, combo in combos.iterrows():
        part = frame[(frame.dataset == combo.dataset) & (frame.config == combo.config)
                     & (frame.recoverer == combo.recoverer)]
        rule = part[part.method == combo.method]
        if rule.empty:
            continue
        deficits, gains = [], []
        for (dataset, rate), group in part.groupby(["dataset", "rate"]):
            value = group[group.method == combo.method].accuracy.mean()
            if np.isnan(value):
                continue
            none, all_ = (group[group.method == m].accuracy.mean() for m in ("none", "all"))
            deficits.append(value - max(none, all_))
            gains.append(value - none)
        rows.append(dict(dataset=combo.dataset, config=combo.config, recoverer=combo.recoverer, rule=combo.method,
                         datasets=rule.dataset.nunique(), mean_accuracy=rule.accuracy.mean() * 100,
                         mean_gain_over_best_of_none_all=np.mean(deficits) * 100,
                         worst_vs_best_of_none_all=np.min(deficits) * 100))
    return pd.DataFrame(rows).sort_values("mean_accuracy", ascending=False)


def write_markdown(path, results, command, figures):
    frame = pd.DataFrame(results["accuracy"])
    fits = pd.DataFrame(results["fits"])
    lines = ["# Benchmarks", "",
             "Generated by `benchmarks/run_all.py`; raw numbers in "
             f"[`{results['meta']['json_name']}`]({results['meta']['json_name']}).", "",
             "## Reproduce", "", "```bash", command, "```", "",
             f"Mode: **{results['meta']['mode']}**, seeds {results['meta']['seeds']}, "
             f"torch threads {results['meta']['torch_threads']}, device cpu, total wall time "
             f"{results['meta']['wall_s'] / 60:.1f} min on {results['meta']['cpu_count']} CPU cores. "
             f"Versions: {results['meta']['versions']}.", ""]
    lines += ["## Protocol", "",
              "- Every network is trained on the complete training part (random modality subsets, the paper's "
              "protocol) and tested under `apply_missing`: each test sample misses round(η·M) random "
              "modalities, at least one observed. The same missing test sets are used by every method of a seed.",
              "- Network: d_model 32, 4 heads, 2 blocks, projection 32, AdamW lr 3e-3, batch 128, a fixed "
              "number of epochs (no early stopping, see [the notes](benchmark_notes.md)), `device='cpu'`.",
              "- Training never uses the recoverer when the training data are complete, so each network is "
              "trained once per (seed, distance, temperature) and evaluated with every recoverer by refitting "
              "only `recoverer_` (`benchmarks/common.py:with_recoverer`).",
              "- **oracle**: per test sample, correct if *any* subset of its recovered modalities (fused with what "
              "it observed) is classified correctly, computed by writing the recovered values of exactly that "
              "subset into the input and predicting with `selection='none'`. It is the ceiling of any "
              "label-free per-sample selection over the same candidates.",
              "- Baselines see the same splits, flattened and concatenated: HistGradientBoostingClassifier "
              "(native NaN) and imputer + StandardScaler + LogisticRegression, trained on the complete training part.",
              "- `/log`, `/prob`: reward forms; `thr=`: `acceptance_threshold` (a candidate is accepted only when "
              "its reward exceeds it).",
              "- **auto rows** (main config, every recoverer): a second network per (seed, recoverer), same "
              "settings and seed, fitted with `acceptance_threshold=\"auto\"` and that recoverer: it trains on "
              "80 % of the training samples and fits the threshold on the other 20 % (modalities hidden at "
              "random, recovered by a recoverer fitted without them). `dymo/log auto` predicts with the fitted "
              "threshold; `dymo/log thr=0, auto net` is the paper's rule on the *same* network (`set_params("
              "acceptance_threshold=0.0)`), `none, auto net` / `all, auto net` likewise. `none` and `all` "
              "without suffix are the network trained on all training samples.", ""]
    lines += ["## Accuracy (%)", ""]
    for dataset in [d for d in DATASET_TITLES if d in set(frame.dataset)]:
        lines += [f"### {DATASET_TITLES[dataset]}", ""]
        sub = frame[frame.dataset == dataset]
        configs = [c for c in sub.config.unique() if c != "baseline"]
        for config in configs:
            for recoverer in sub[sub.config == config].recoverer.unique():
                methods = (MAIN_METHODS + sorted(m for m in sub.method.unique() if "thr=" in m and "auto" not in m)
                           + AUTO_METHODS)
                lines += [f"**{config}, recoverer `{recoverer}`** (n seeds = {sub.seed.nunique()})", "",
                          accuracy_table(frame, dataset, config, recoverer, methods), ""]
                key = (dataset, config, recoverer)
                if key in figures:
                    lines += [f"![{dataset} {config} {recoverer}]({figures[key]})", ""]
        fit = fits[fits.dataset == dataset]
        lines += ["Fit: " + "; ".join(f"{c}: {g.fit_s.mean():.1f} s ({g.epoch_s.mean():.2f} s/epoch, "
                                       f"{int(g.n_epochs.mean())} epochs)" for c, g in fit.groupby("config")), ""]
    if results.get("auto_thresholds"):
        lines += auto_section(frame, results["auto_thresholds"])
    cost = results["cost"]
    lines += ["## Cost of selection", "",
              f"M = {cost['n_modalities']}, η = {cost['missing_rate']}, one batch of {cost['n']} samples "
              f"(PolyMNIST-like digits), recoverer `{cost['recoverer']}` so recovery ({cost['recover_s'] * 1e3:.1f} ms, "
              f"identical for every mode) does not hide the selection; best of several runs, "
              f"{cost['torch_threads']} torch thread(s).", "",
              "| predict | wall time (s) | encoder rows (per modality) | fusion rows |", "|---|---|---|---|"]
    for key, label in (("none", "none"), ("all", "all (one fusion pass)"), ("dymo_log", "dymo, log reward"),
                       ("dymo_prob", "dymo, prob reward"), ("authors_loop", "authors' loop structure (prob)")):
        passes = cost[f"{key}_passes"]
        encoders = sorted({v for k, v in passes.items() if k.startswith("encoder")})
        lines.append(f"| {label} | {cost[f'{key}_s']:.3f} | {', '.join(map(str, encoders))} | {passes.get('fusion', 0)} |")
    lines += ["",
              f"- predict(dymo)/predict(all) = **{cost['ratio_dymo_log_vs_all']:.2f}** (log reward), "
              f"{cost['ratio_dymo_prob_vs_all']:.2f} (prob); selection alone (recovery time subtracted) "
              f"{cost['ratio_selection_only_log']:.2f}.",
              f"- authors' loop structure / ours (both prob reward) = **{cost['speedup_vs_authors_loop']:.1f}×**; "
              f"the two agree on {cost['authors_vs_ours_prediction_agreement'] * 100:.1f} % of the predictions "
              "(an independent check of the batched implementation).",
              f"- fit time per epoch at this size: {cost['fit_epoch_s']:.2f} s.", ""]
    lines += ["## Scaling", "", f"![scaling]({figures['scaling']})", "",
              "Each (n, mode) of the n-scaling runs in a fresh process (`benchmarks/memprobe.py`): peak RSS growth "
              "during predict (kernel high-water mark reset before the call) and the tracemalloc peak (numpy and "
              "Python allocations; torch's are not traced). Model: 3 tabular views of 10 features, 2 of 3 missing, "
              "`SimpleImputer`, `predict_batch_size=1024`.", "",
              "| n | mode | predict (s) | peak RSS growth (MiB) | tracemalloc peak (MiB) | input arrays (MiB) |",
              "|---|---|---|---|---|---|"]
    for row in results["scaling_n"]:
        lines.append(f"| {row['n']:,} | {row['mode']} | {row['predict_s']:.2f} | {row['peak_rss_delta_mb']:.1f} | "
                     f"{row.get('tracemalloc_peak_mb', float('nan')):.1f} | {row['input_mb']:.1f} |")
    lines += ["", "| M | fit (s) | s/epoch | statistics (s) | fitted subsets | statistics (MiB) | predict all (s) | "
              "predict dymo (s) | dymo fusion rows | dymo peak RSS (MiB) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in results["scaling_m"]:
        lines.append(f"| {row['n_modalities']} | {row['fit_s']:.1f} | {row['epoch_s']:.2f} | {row['statistics_s']:.1f} | "
                     f"{row['n_fitted_subsets']} | {row['statistics_mb']:.2f} | {row['all_s']:.3f} | {row['dymo_s']:.3f} | "
                     f"{row['dymo_fusion_rows']} | {row['dymo_peak_rss_delta_mb']:.1f} |")
    lines += [""]
    ranking = defaults_analysis(frame)
    results["defaults_ranking"] = ranking.to_dict(orient="records")
    lines += ["## Defaults", "",
              "Rule: among label-free selection rules, prefer the highest mean accuracy over every data set, "
              "seed and missing rate > 0, **subject to** never being more than 1 point below the better of "
              "`none`/`all` (the safety requirement). Tables: per data set, the 10 best (network config, recoverer, "
              "rule) by mean accuracy over missing rates > 0 and seeds.", ""]
    for dataset, group in ranking.groupby("dataset", sort=False):
        lines += [f"**{dataset}**", "",
                  "| config | recoverer | rule | mean acc. | mean gain vs best of none/all | worst vs best of none/all |",
                  "|---|---|---|---|---|---|"]
        for row in group.head(10).to_dict(orient="records"):
            lines.append(f"| {row['config']} | {row['recoverer']} | {row['rule']} | {row['mean_accuracy']:.1f} | "
                     f"{row['mean_gain_over_best_of_none_all']:+.1f} | {row['worst_vs_best_of_none_all']:+.1f} |")
        lines += [""]
    lines += ["", "{{ANALYSIS}}", ""]
    text = "\n".join(lines)
    analysis = results.get("analysis_markdown", "")
    with open(path, "w") as handle:
        handle.write(text.replace("{{ANALYSIS}}", analysis))


def threshold_label(value):
    value = float(value)
    if np.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:.3g}"


def auto_summary(frame, autos):
    """Per (data set, recoverer): chosen thresholds and the accuracies at the highest missing rate,
    and the worst gap of each rule against the better of none/all (main network) at any rate."""
    rows = []
    autos = pd.DataFrame(autos)
    for (dataset, recoverer), group in autos.groupby(["dataset", "recoverer"], sort=False):
        part = frame[(frame.dataset == dataset) & (frame.recoverer == recoverer)
                     & (frame.config == group.config.iloc[0])]
        rates = sorted(part.rate.unique())
        top = rates[-1]

        def acc(method, rate):
            return part[(part.method == method) & (part.rate == rate)].accuracy.mean() * 100

        def worst(method):
            return min(acc(method, r) - max(acc("none", r), acc("all", r)) for r in rates)

        rows.append(dict(
            dataset=dataset, recoverer=recoverer, rate=float(top),
            thresholds=[float(t) for t in group.sort_values("seed").threshold],
            none=acc("none", top), all=acc("all", top), dymo_paper=acc("dymo/log", top),
            auto_net_none=acc("none, auto net", top), auto_net_all=acc("all, auto net", top),
            auto_net_paper=acc("dymo/log thr=0, auto net", top), auto=acc("dymo/log auto", top),
            auto_gain_top=acc("dymo/log auto", top) - max(acc("none", top), acc("all", top)),
            worst_paper=worst("dymo/log"), worst_auto_net_paper=worst("dymo/log thr=0, auto net"),
            worst_auto=worst("dymo/log auto"),
            auto_fit_s=float(group.fit_s.mean())))
    return rows


def auto_section(frame, autos):
    rows = auto_summary(frame, autos)
    lines = ["## Held-out acceptance threshold (`acceptance_threshold=\"auto\"`, cosine, t=0.1)", "",
             "Accuracy at the highest missing rate (η = 0.8; 2/3 views for breast cancer), mean over seeds. "
             "*best* = the better of `none`/`all` of the network trained on all samples; *worst gap* = the "
             "lowest (rule − best of none/all) over every missing rate. Thresholds: one per seed "
             "(+inf accepts nothing = `none`, -inf accepts every candidate = `all`, 0 = the paper's rule).", "",
             "| data set | recoverer | thresholds (per seed) | none | all | dymo/log, thr=0 | auto net: none / all / thr=0 "
             "| **dymo/log auto** | auto − best | worst gap: thr=0 / auto net thr=0 / auto | auto fit (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['recoverer']} | {', '.join(threshold_label(t) for t in r['thresholds'])} | "
            f"{r['none']:.1f} | {r['all']:.1f} | {r['dymo_paper']:.1f} | "
            f"{r['auto_net_none']:.1f} / {r['auto_net_all']:.1f} / {r['auto_net_paper']:.1f} | **{r['auto']:.1f}** | "
            f"{r['auto_gain_top']:+.1f} | {r['worst_paper']:+.1f} / {r['worst_auto_net_paper']:+.1f} / "
            f"{r['worst_auto']:+.1f} | {r['auto_fit_s']:.1f} |")
    return lines + [""]
