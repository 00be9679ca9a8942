#!/usr/bin/env python3
"""figures.py: draws the figures of the experiment reports (run.py writes the jobs).

  python3 tools/experiments/figures.py runs/experiments/dense-vs-lory/figures.json

figures.json is a list of jobs; each writes one PNG ("out"):
  {"kind": "lory_plot", "argv": [...]}   tools/lory_plot.py with these arguments (loss, perplexity,
                                         routing, router figures), in this process
  {"kind": "gap", ...}                   training-loss differences against tokens, one colour per
                                         pair, each seed faint, the mean over seeds bold (paper Fig. 4, right)
  {"kind": "accuracy", ...}              multiple-choice accuracy per task and model, with standard errors
  {"kind": "specialisation", ...}        routing specialisation (JS divergence, bits) per layer and model
Needs matplotlib (Debian: apt-get install python3-matplotlib); the numbers come from the JSON,
so a figure can be redrawn without the runs.
"""
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import lory_plot  # noqa: E402  (tools/lory_plot.py: the project's figure module, Agg backend)
from lory_plot import PALETTE, moving_average, plt, save  # noqa: E402
import numpy as np  # noqa: E402


def colour(i):
    return PALETTE[i % len(PALETTE)]


def draw_gap(job):
    fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    for i, curve in enumerate(job["curves"]):
        c = colour(i + 1)
        grids = []
        for seed in curve["seeds"]:
            x = np.array(seed["tokens"], dtype=float)
            if not np.isfinite(x).all():
                x = np.array(seed["step"], dtype=float)
            y = np.array(seed["value"], dtype=float)
            ax.plot(x, moving_average(y, job.get("smooth", 1)), color=c, lw=0.8, alpha=0.35)
            grids.append((x, y))
        if grids:
            # the mean over seeds at the steps every seed logged
            common = set(grids[0][0].tolist())
            for x, _ in grids[1:]:
                common &= set(x.tolist())
            xs = np.array(sorted(common))
            if len(xs):
                ys = np.mean([np.interp(xs, x, y) for x, y in grids], axis=0)
                n = len(grids)
                seeds = f"mean of {n} seeds" if n > 1 else f"seed {curve['seeds'][0]['seed']}"
                ax.plot(xs, moving_average(ys, job.get("smooth", 1)), color=c, lw=2.2, label=f"{curve['label']} ({seeds})")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xlabel("training tokens")
    ax.xaxis.set_major_formatter(lory_plot.EngFormatter(sep=""))
    ax.set_ylabel(job.get("ylabel", "loss difference"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title(job.get("title", ""), fontsize=12, fontweight="bold")
    save(fig, job["out"])


def draw_accuracy(job):
    bars = job["bars"]
    tasks = list(dict.fromkeys(b["task"] for b in bars))
    models = list(dict.fromkeys(b["model"] for b in bars))
    fig, ax = plt.subplots(figsize=(max(8.0, 2.5 + 1.6 * len(tasks) * max(1, len(models) / 2)), 4.8),
                           layout="constrained")
    width = 0.8 / len(models)
    by = {(b["task"], b["model"]): b for b in bars}
    colours = lory_plot.model_colours(models)
    for m, model in enumerate(models):
        xs, ys, es = [], [], []
        for t, task in enumerate(tasks):
            b = by.get((task, model))
            if b is None:
                continue
            x = t + (m - (len(models) - 1) / 2) * width
            xs.append(x)
            ys.append(100 * b["acc"])
            es.append(100 * b["stderr"] if b["stderr"] is not None and math.isfinite(b["stderr"]) else 0)
            if len(b.get("seeds", [])) > 1:
                ax.plot([x] * len(b["seeds"]), [100 * v for v in b["seeds"]], "o", ms=3, color="black", alpha=0.6,
                        zorder=3)
        ax.bar(xs, ys, width * 0.92, yerr=es, capsize=3, color=colours[model], label=model, zorder=2)
    for t, task in enumerate(tasks):
        level = job.get("chance", {}).get(task)
        if level:
            ax.plot([t - 0.45, t + 0.45], [100 * level] * 2, color="0.3", ls="--", lw=1, zorder=4)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel(job.get("ylabel", "accuracy (%)"))
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.set_axisbelow(True)
    ax.legend(fontsize=9, title="error bars: binomial stderr;\ndashed: chance; dots: seeds", title_fontsize=7,
              loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(job.get("title", ""), fontsize=11, fontweight="bold", wrap=True)
    save(fig, job["out"])


def draw_specialisation(job):
    bars = job["bars"]
    layers = max(len(v) for b in bars for v in b["seeds"])
    fig, ax = plt.subplots(figsize=(3 + 1.2 * layers * max(1, len(bars) / 2), 4.6), layout="constrained")
    width = 0.8 / len(bars)
    colours = lory_plot.model_colours([b["model"] for b in bars])
    for m, b in enumerate(bars):
        vals = np.array([v + [np.nan] * (layers - len(v)) for v in b["seeds"]], dtype=float)
        x = np.arange(layers) + (m - (len(bars) - 1) / 2) * width
        ax.bar(x, np.nanmean(vals, axis=0), width * 0.92, color=colours[b["model"]], label=b["model"], zorder=2)
        if len(vals) > 1:
            for row in vals:
                ax.plot(x, row, "o", ms=3, color="black", alpha=0.6, zorder=3)
    ax.set_xticks(range(layers), [f"layer {l}" for l in range(layers)])
    ax.set_ylabel("mean pairwise JS divergence between domains (bits)")
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.set_axisbelow(True)
    ax.legend(fontsize=9)
    ax.set_title(job.get("title", ""), fontsize=12, fontweight="bold")
    save(fig, job["out"])


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        jobs = json.load(f)
    failed = 0
    for job in jobs:
        try:
            if job["kind"] == "lory_plot":
                rc = lory_plot.main(job["argv"])
                if rc != 0:
                    raise RuntimeError(f"lory_plot exited with {rc}")
            else:
                {"gap": draw_gap, "accuracy": draw_accuracy, "specialisation": draw_specialisation}[job["kind"]](job)
                print(f"figures: wrote {job['out']}")
        except (Exception, SystemExit) as e:  # noqa: BLE001 (one bad figure must not lose the others)
            failed += 1
            print(f"figures: {job.get('out')}: {type(e).__name__}: {e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
