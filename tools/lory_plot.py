#!/usr/bin/env python3
"""lory_plot.py: PNG figures of Lory training runs, drawn with matplotlib.

  lory_plot.py loss --runs runs/dense/metrics.jsonl=dense,runs/lory/metrics.jsonl --smooth 5 --out loss.png
  lory_plot.py routing --eval runs/lory/eval.json --layers 0,2,3 --out routing.png
  lory_plot.py perplexity --compare 'dense=runs/dense-seed*/eval.json,lory-8e=a.json+b.json' --out ppl.png
  lory_plot.py router --runs runs/lory-seed1/metrics.jsonl,runs/lory-seed2/metrics.jsonl --out router.png

What each figure shows, and which file it reads:
  loss        training loss against step (or tokens) of several runs, as a moving
              average over the faint raw curve, the held-out (eval) loss as dots,
              and the dense-to-Lory switch (upcycling) as a dotted line with the
              dense warm-up shaded; --diff adds a panel of each run's loss minus
              that of the first model's run with the same seed (paper Fig. 4,
              right). Reads metrics.jsonl (written by lory_train).
  routing     the mean routing weight of each expert on each domain's held-out
              tokens, one heatmap per layer on one colour scale (paper Fig. 6).
              Reads an eval JSON (lory_train's eval.json, or lory_eval --out).
  perplexity  held-out perplexity per domain of several models, each one eval JSON
              per training seed: a bar is the perplexity of the seeds' mean loss,
              dots are the seeds (one run: its 95% interval, from the eval JSON),
              the label over a bar its gain over the first model, 1 - ppl /
              ppl(first), as lory_eval --compare prints it (paper Fig. 2, right).
              Reads eval JSONs.
  router      the routers during training: the routing entropy (log E = uniform)
              and the experts used (weight > 2/E in some segment of the last
              log.utilisation_window steps), per layer, against step. Reads the
              "routing_entropy" and "experts_used" of metrics.jsonl's train records.

A run's label defaults to the name of the directory holding its metrics.jsonl;
runs labelled "<model> seed <n>" (or "<model>-seed<n>") share their model's
colour, one shade per seed. metrics.jsonl holds one JSON object per line:
{"type":"train","step":..,"tokens":..,"loss":..}, {"type":"eval",..},
{"type":"event","event":"upcycle","step":..}; other types and unknown keys are
ignored. A resumed run logs some steps again: a record at or below an earlier
step replaces the earlier records from that step on. Needs only the standard
library and matplotlib (with its numpy); renders off-screen (Agg).
"""
import argparse
import glob
import json
import math
import os
import re
import sys
import tempfile
import warnings

try:
    import matplotlib
except ImportError:
    sys.exit(f"lory_plot: this python ({sys.executable}) has no matplotlib: install it with "
             f"'apt-get install python3-matplotlib' (or 'bash tools/install-deps.sh') and run the script "
             f"with /usr/bin/python3, or 'pip install matplotlib' for this python")

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import EngFormatter, LogFormatter, LogLocator, MaxNLocator  # noqa: E402

DPI = 150
PALETTE = plt.get_cmap("tab10").colors


class PlotError(Exception):
    """Bad input: the message names the file and what is wrong with it."""


# ---- reading ----------------------------------------------------------------


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise PlotError(f"cannot open {path}: {e.strerror}") from None
    except ValueError as e:
        raise PlotError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PlotError(f"{path}: not a JSON object")
    return doc


def number(record, key, where, null_is_nan=False):
    """A number field; a JSON null (how the trainer writes a NaN loss) reads as NaN where allowed."""
    if key not in record:
        raise PlotError(f'{where}: the {record.get("type", "")} record has no "{key}"')
    value = record[key]
    if value is None and null_is_nan:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PlotError(f'{where}: "{key}" must be a number, got {json.dumps(value)}')
    return float(value)


class Run:
    """One metrics.jsonl: its train and eval records and its upcycling step."""

    def __init__(self, path, label):
        self.path, self.label = path, label
        self.train, self.eval, self.upcycle = [], [], []  # records, in step order
        self.model, self.seed = split_label(label)

    def x(self, records, axis):
        for r in records:
            if axis == "tokens" and math.isnan(r["tokens"]):
                raise PlotError(f'{self.path}: the record at step {r["step"]:g} has no "tokens" (needed by --x tokens)')
        return np.array([r[axis] for r in records], dtype=float)

    def switch_x(self, axis):
        """Where the dense warm-up ended (the last upcycling event), on the x axis; None for no switch."""
        if not self.upcycle:
            return None
        step = self.upcycle[-1]["step"]
        if axis == "step":
            return step
        before = [r for r in self.train if r["step"] <= step]
        return before[-1]["tokens"] if before else None


def truncate(records, step):
    while records and records[-1]["step"] >= step:
        records.pop()


def read_metrics(path, label):
    run = Run(path, label)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except OSError as e:
        raise PlotError(f"cannot open {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise PlotError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            record = json.loads(line)
        except ValueError as e:
            raise PlotError(f"{where}: not valid JSON: {e.msg} (column {e.pos + 1})") from None
        if not isinstance(record, dict):
            raise PlotError(f"{where}: not a JSON object")
        kind = record.get("type")
        if not isinstance(kind, str):
            raise PlotError(f'{where}: the record has no string "type"')
        if kind == "event" and record.get("event") == "upcycle":
            step = number(record, "step", where)
            truncate(run.upcycle, step)
            run.upcycle.append(dict(record, step=step))
            continue
        if kind not in ("train", "eval"):
            continue
        r = dict(record)
        r["step"] = number(record, "step", where)
        r["tokens"] = number(record, "tokens", where) if "tokens" in record else math.nan
        r["loss"] = number(record, "loss", where, null_is_nan=True)
        if kind == "train" and run.train and r["step"] <= run.train[-1]["step"]:
            # Logged again: the run resumed from an earlier checkpoint, and
            # what followed that step belongs to the abandoned attempt.
            truncate(run.eval, r["step"])
            truncate(run.upcycle, r["step"])
        records = run.train if kind == "train" else run.eval
        truncate(records, r["step"])
        records.append(r)
    if not run.train and not run.eval:
        raise PlotError(f"{path} has no train or eval records")
    return run


def split_label(label):
    """'lory-8e seed 2' -> ('lory-8e', 2); a label without a seed is its own model."""
    m = re.fullmatch(r"(.*?)[\s_-]*seed[\s_-]*(\d+)", label, flags=re.IGNORECASE)
    return (m.group(1), int(m.group(2))) if m and m.group(1) else (label, None)


def parse_runs(lists):
    """['a.jsonl=label,b.jsonl'] -> [(path, label)]; the label defaults to the run's directory."""
    runs = []
    for item in (i.strip() for text in lists for i in text.split(",")):
        if not item:
            continue
        path, _, label = item.rpartition("=") if "=" in item else (item, "", "")
        if not path:
            raise PlotError(f"--runs: '{item}' has no file before '='")
        if not label:
            label = os.path.basename(os.path.dirname(os.path.abspath(path))) or os.path.splitext(path)[0]
        runs.append((path, label))
    if not runs:
        raise PlotError("give at least one metrics.jsonl with --runs")
    return runs


def model_colours(models):
    """A colour per model name, the same in every figure: dense models blue, the others the next
    colours of tab10 in the order given."""
    dense = [m for m in models if m.lower().startswith("dense")]
    others = [m for m in dict.fromkeys(models) if m not in dense]
    return {m: PALETTE[0] if m in dense else PALETTE[(1 + others.index(m)) % len(PALETTE)] for m in models}


def colours(runs):
    """Each run's colour: its model's, lightened for each further seed of the model."""
    by_model = model_colours([r.model for r in runs])
    out = []
    for r in runs:
        base = np.array(to_rgb(by_model[r.model]))
        same = sorted((s for s in runs if s.model == r.model), key=lambda s: s.seed or 0)
        shade = same.index(r) / len(same) * 0.6 if len(same) > 1 else 0.0
        out.append(tuple(base + (1 - base) * shade))
    return out


def moving_average(y, window):
    """The mean of the `window` values centred on each (fewer at the ends), NaNs left out; a
    centred window does not lag behind the curve as a trailing one does."""
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(y)
    sums = np.concatenate(([0.0], np.cumsum(np.where(ok, y, 0.0))))
    counts = np.concatenate(([0], np.cumsum(ok)))
    i = np.arange(len(y))
    lo, hi = np.maximum(i - (window - 1) // 2, 0), np.minimum(i + window // 2 + 1, len(y))
    n = counts[hi] - counts[lo]
    return np.where(n > 0, (sums[hi] - sums[lo]) / np.maximum(n, 1), np.nan)


def pick_layers(spec, num_layers, flag="--layers"):
    """'0,2,3' -> [0, 2, 3], checked against the model; default: first, middle, last."""
    if not spec:
        return sorted({0, num_layers // 2, num_layers - 1})
    try:
        layers = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise PlotError(f"{flag}: '{spec}' is not a comma-separated list of layer indices") from None
    if not layers:
        raise PlotError(f"{flag}: no layer given")
    for l in layers:
        if not 0 <= l < num_layers:
            raise PlotError(f"{flag}: layer {l} is out of range: the model has {num_layers} layers "
                            f"(0..{num_layers - 1})")
    return layers


def save(fig, out):
    """Writes the PNG through a temporary file and a rename, so a reader never sees half of it."""
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lory_plot.", suffix=".png", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=DPI)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)


def log_y(ax):
    """A logarithmic y axis labelled with plain numbers (5, 6, 7, 10), not powers of ten."""
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(LogLocator(subs=(1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)))
    ax.yaxis.set_major_formatter(LogFormatter())
    ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))


def tokens_axis(ax, axis):
    if axis == "tokens":
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))


# ---- loss -------------------------------------------------------------------


def paired_difference(run, reference_runs, axis):
    """run's train loss minus that of the reference run with the same seed (or the only one), at the
    steps both logged; None without a partner."""
    partners = [r for r in reference_runs if r.seed == run.seed] or (reference_runs if len(reference_runs) == 1 else [])
    if not partners or partners[0] is run:
        return None
    theirs = {r["step"]: r["loss"] for r in partners[0].train}
    mine = [r for r in run.train if r["step"] in theirs]
    if not mine:
        return None
    return run.x(mine, axis), np.array([r["loss"] - theirs[r["step"]] for r in mine]), partners[0].label


def plot_loss(args):
    runs = [read_metrics(p, l) for p, l in parse_runs((args.runs or []) + (args.metrics or []))]
    run_colours = colours(runs)
    reference = [r for r in runs if r.model == runs[0].model]
    diffs = [paired_difference(r, reference, args.x) if args.diff and r.model != runs[0].model else None for r in runs]
    if args.diff and not any(diffs):
        raise PlotError(f"--diff: no run has a partner among the runs of '{runs[0].model}' (the first model) "
                        f"with the same seed and logged steps")
    if any(diffs):
        fig, (ax, low) = plt.subplots(2, 1, sharex=True, height_ratios=(3, 1.2), layout="constrained",
                                      figsize=(args.width / DPI, args.height / DPI))
    else:
        fig, ax = plt.subplots(figsize=(args.width / DPI, args.height / DPI), layout="constrained")
        low = None
    handles = []
    for run, colour, diff in zip(runs, run_colours, diffs):
        if run.train:
            x, y = run.x(run.train, args.x), np.array([r["loss"] for r in run.train])
            if args.smooth > 1:  # the raw curve faintly behind its average, so the noise stays visible
                ax.plot(x, y, color=colour, lw=0.7, alpha=0.25)
                y = moving_average(y, args.smooth)
            handles += ax.plot(x, y, color=colour, lw=1.6, label=run.label)
        if run.eval:
            x, y = run.x(run.eval, args.x), [r["loss"] for r in run.eval]
            line, = ax.plot(x, y, "o", ls="--" if len(x) > 1 else "", lw=1, color=colour, ms=7, mec="white",
                            mew=1.2, zorder=3, label=run.label)
            if not run.train:
                handles.append(line)
        if diff:
            x, y, partner = diff
            low.plot(x, moving_average(y, args.smooth), color=colour, lw=1.6, label=f"{run.label} - {partner}")
    # Runs listed model by model, seeds in order.
    models = list(dict.fromkeys(r.model for r in runs))
    label_order = {r.label: (models.index(r.model), r.seed or 0, i) for i, r in enumerate(runs)}
    handles.sort(key=lambda h: label_order[h.get_label()])
    # The dense-to-Lory switch: one line when every Lory run switched at the same x, else one per run.
    switches = {run.label: run.switch_x(args.x) for run in runs if run.switch_x(args.x) is not None}
    axes = [ax] + ([low] if low else [])
    if len(set(switches.values())) == 1:
        at = next(iter(switches.values()))
        start = min(r.x(r.train, args.x)[0] for r in runs if r.train) if any(r.train for r in runs) else at
        for a in axes:
            a.axvspan(start, at, color="0.5", alpha=0.1, lw=0)
            a.axvline(at, color="0.3", ls=":", lw=1.3)
        ax.lines[-1].set_label(f"dense warm-up ends, upcycling to Lory ({args.x} {at:,.0f})")
        handles.append(ax.lines[-1])
    else:
        for run, colour in zip(runs, run_colours):
            if run.label in switches:
                for a in axes:
                    a.axvline(switches[run.label], color=colour, ls=":", lw=1.3)
                ax.lines[-1].set_label(f"{run.label}: upcycling to Lory")
                handles.append(ax.lines[-1])
    if any(run.eval for run in runs):
        handles.append(Line2D([], [], marker="o", ls="", color="0.35", mec="white", ms=7,
                              label="held-out loss (eval), in the run's colour"))
    smooth = f", moving average of {args.smooth} points over the faint raw curve" if args.smooth > 1 else ""
    # A few runs: the legend inside, top right. More (an experiment's arms and seeds): beside the
    # axes, where it cannot cover the ends of the curves, which are what the figure is read for.
    beside = dict(loc="upper left", bbox_to_anchor=(1.01, 1)) if len(handles) > 6 else None
    if beside:  # over the whole figure: a title centred on the narrower axes would run off its left edge
        fig.suptitle(args.title, fontsize=13, fontweight="bold")
    else:
        ax.set_title(args.title, fontsize=13, fontweight="bold")
    ax.set_ylabel("training loss (nats/token)")
    if args.log_y:
        log_y(ax)
    ax.legend(handles=handles, fontsize=9, framealpha=0.9, title=f"training loss{smooth}", title_fontsize=8,
              **(beside or dict(loc="upper right")))
    if low:
        low.axhline(0, color="0.2", lw=0.8)
        low.set_ylabel(f"loss - {runs[0].model}'s")
        low.legend(fontsize=8, framealpha=0.9, title=f"training loss minus {runs[0].model}'s,\nsame seed (below 0: better)",
                   title_fontsize=8, **(beside or dict(loc="best")))
    for a in axes:
        a.grid(alpha=0.3)
        a.margins(x=0.02)
    axes[-1].set_xlabel("training tokens" if args.x == "tokens" else "step")
    tokens_axis(axes[-1], args.x)
    save(fig, args.out)
    points = sum(len(r.train) + len(r.eval) for r in runs)
    return f"{len(runs)} run{'s' * (len(runs) != 1)}, {points} points"


# ---- routing ----------------------------------------------------------------


def routing_weights(path, doc):
    """eval JSON -> (domains, weights[domain][layer][expert]) with every domain of the same shape."""
    weights, experts = doc.get("routing_weights"), doc.get("num_experts")
    if experts == 0 or not weights:
        raise PlotError(f"{path} is from a dense model: no routing weights to plot")
    if not isinstance(weights, dict):
        raise PlotError(f'{path}: "routing_weights" must be an object of domain -> [layer][expert]')
    domains, shape = list(weights), None
    for domain, layers in weights.items():
        where = f'{path}: routing_weights["{domain}"]'
        if not isinstance(layers, list) or not layers:
            raise PlotError(f"{where} must be a non-empty array of layers")
        for l, row in enumerate(layers):
            if not isinstance(row, list) or not row:
                raise PlotError(f"{where}[{l}] must be a non-empty array of experts")
            for v in row:
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    raise PlotError(f"{where}[{l}] holds {json.dumps(v)}, not a number")
        this = (len(layers), len(layers[0]))
        if any(len(row) != this[1] for row in layers):
            raise PlotError(f"{where}: its layers have different numbers of experts")
        if shape and this != shape:
            raise PlotError(f'{where} is {this[0]}x{this[1]} (layers x experts), but routing_weights["{domains[0]}"] '
                            f"is {shape[0]}x{shape[1]}")
        shape = this
    w = np.array([[[math.nan if v is None else v for v in row] for row in weights[d]] for d in domains], dtype=float)
    return domains, w


def plot_routing(args):
    doc = read_json(args.eval)
    domains, w = routing_weights(args.eval, doc)  # [domain, layer, expert]
    num_layers, num_experts = w.shape[1], w.shape[2]
    layers = pick_layers(args.layers, num_layers)
    shown = w[:, layers, :]
    if not np.isfinite(shown).any():
        raise PlotError(f"{args.eval}: the routing weights of layers {layers} are all null")
    lo, hi = np.nanmin(shown), np.nanmax(shown)
    # Up to 16 experts the layers stand side by side, as in the paper; more, one layer per row.
    cols = len(layers) if num_experts <= 16 else 1
    rows = -(-len(layers) // cols)
    panel_width = min(0.42 * num_experts, 13)
    fig, axes = plt.subplots(rows, cols, sharey=True, squeeze=False, layout="constrained",
                             figsize=(2.6 + cols * (panel_width + 0.3), 0.6 + rows * (0.9 + len(domains) * 0.42)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.8")
    for ax, l in zip(axes.flat, layers):
        image = ax.imshow(w[:, l, :], cmap=cmap, vmin=lo, vmax=hi, aspect="auto", interpolation="nearest")
        ax.set_title(f"layer {l}", fontsize=11)
        if num_experts <= 32:
            ax.set_xticks(range(num_experts), [str(e) for e in range(num_experts)], fontsize=8)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_yticks(range(len(domains)), domains)
        ax.set_xlabel("expert")
        ax.tick_params(length=0)
        ax.spines[:].set_visible(False)
        # Thin white lines between the cells.
        ax.set_xticks(np.arange(num_experts + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(len(domains) + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", lw=1)
        ax.tick_params(which="minor", length=0)
        if num_experts <= 16:
            for d in range(len(domains)):
                for e in range(num_experts):
                    v = w[d, l, e]
                    if np.isfinite(v):
                        dark = (v - lo) / (hi - lo) < 0.6 if hi > lo else True
                        ax.text(e, d, f"{v:.2f}", ha="center", va="center", fontsize=6.5,
                                color="white" if dark else "black")
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.9, pad=0.02)
    if lo <= 1 / num_experts <= hi:
        bar.ax.axhline(1 / num_experts, color="white", lw=2)
        bar.set_label("mean routing weight (white line: 1/E, uniform)")
    else:
        bar.set_label("mean routing weight")
    if args.title:
        title = args.title
    else:
        source = doc.get("checkpoint") or doc.get("run") or args.eval
        step = f" at step {doc['step']}" if doc.get("step") else ""
        title = f"Mean routing weight of each expert, by domain\n{source}{step}"
    fig.suptitle(title, fontsize=12, fontweight="bold", wrap=True)
    save(fig, args.out)
    return (f"{len(layers)} layer{'s' * (len(layers) != 1)}, {len(domains)} domain{'s' * (len(domains) != 1)}, "
            f"{num_experts} experts")


# ---- perplexity -------------------------------------------------------------


def read_models(spec):
    """'dense=a.json+b.json,lory=runs/l-seed*/eval.json' -> [(label, [eval JSON, ...])]."""
    models = []
    for item in (i.strip() for i in spec.split(",") if i.strip()):
        label, _, files = item.partition("=") if "=" in item else (item, "", item)
        paths = []
        for pattern in (p for p in files.split("+") if p):
            found = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
            if not found:
                raise PlotError(f"--compare: '{pattern}' matches no file")
            paths += found
        if not paths:
            raise PlotError(f"--compare: '{item}' names no eval JSON")
        docs = [read_json(p) for p in paths]
        for p, doc in zip(paths, docs):
            if not isinstance(doc.get("domains"), dict):
                raise PlotError(f'{p}: no "domains" object: not an eval JSON of lory_train or lory_eval')
        models.append((label, paths, docs))
    if not models:
        raise PlotError("give at least one model with --compare")
    return models


def loss_of(path, doc, domain):
    d = doc if domain == "all" else doc["domains"].get(domain)
    if d is None:
        return math.nan
    return number(d, "loss", f"{path}: domain {domain}", null_is_nan=True)


def interval(doc, domain):
    """The [lo, hi] perplexity interval of one eval JSON on a domain ("all": the whole); NaNs if none."""
    ci = (doc if domain == "all" else doc["domains"].get(domain) or {}).get("ppl_ci")
    ok = isinstance(ci, list) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci)
    return ci if ok else [math.nan, math.nan]


def plot_perplexity(args):
    models = read_models(args.compare)
    domains = list(dict.fromkeys(d for _, _, docs in models for doc in docs for d in doc["domains"])) + ["all"]
    # losses[m][d, seed]; the bar is the perplexity of the seeds' mean loss, as lory_eval --compare prints.
    losses = [np.array([[loss_of(p, doc, d) for p, doc in zip(paths, docs)] for d in domains])
              for _, paths, docs in models]
    with warnings.catch_warnings():  # a domain that no seed of a model has: NaN, and no bar
        warnings.simplefilter("ignore", RuntimeWarning)
        ppl = [np.exp(np.nanmean(l, axis=1)) for l in losses]
    fig, ax = plt.subplots(figsize=(4.2 + 0.35 * len(domains) * (len(models) + 0.6), 5), layout="constrained")
    width = 0.8 / len(models)
    x = np.arange(len(domains), dtype=float)
    x[-1] += 0.5  # "all" set apart from the domains
    by_model = model_colours([label for label, _, _ in models])
    legend_extra = set()
    for m, (label, paths, docs) in enumerate(models):
        colour = by_model[label]
        pos = x + (m - (len(models) - 1) / 2) * width
        seeds = f" ({len(paths)} seeds)" if len(paths) > 1 else ""
        ax.bar(pos, ppl[m], width * 0.92, color=colour, label=label + seeds, zorder=2)
        top = ppl[m]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if len(paths) > 1:  # each seed's perplexity as a dot
                for s in range(len(paths)):
                    ax.plot(pos, np.exp(losses[m][:, s]), "o", ms=3.5, color="black", alpha=0.6, zorder=3,
                            label=None if "seeds" in legend_extra else "each seed")
                    legend_extra.add("seeds")
                top = np.fmax(top, np.nanmax(np.exp(losses[m]), axis=1))
            else:  # one run: its 95% interval (bootstrap over document blocks), where the eval JSON has one
                ci = np.array([interval(docs[0], d) for d in domains])
                ok = np.isfinite(ci).all(axis=1)
                if ok.any():
                    ax.errorbar(pos[ok], ppl[m][ok], yerr=[ppl[m][ok] - ci[ok, 0], ci[ok, 1] - ppl[m][ok]], fmt="none",
                                ecolor="black", elinewidth=1, capsize=3, zorder=3,
                                label=None if "ci" in legend_extra else "95% interval of a single run")
                    legend_extra.add("ci")
                    top = np.fmax(top, ci[:, 1])
        if m > 0:
            for d, (mine, first) in enumerate(zip(ppl[m], ppl[0])):
                if np.isfinite(mine) and np.isfinite(first):
                    ax.annotate(f"{100 * (1 - mine / first):+.1f}%", (pos[d], top[d]), xytext=(0, 3),
                                textcoords="offset points", ha="center", va="bottom", fontsize=7, color=colour)
    ax.axvline((x[-2] + x[-1]) / 2, color="0.6", lw=0.8, ls=":") if len(domains) > 1 else None
    ax.set_xticks(x, domains, rotation=30 if len(domains) > 6 else 0, ha="right" if len(domains) > 6 else "center")
    ax.set_ylabel("held-out perplexity (lower is better)")
    if args.log_y:
        log_y(ax)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.set_axisbelow(True)
    ax.margins(y=0.12)
    handles, labels = ax.get_legend_handles_labels()  # the models first, then the dots or intervals
    order = sorted(range(len(labels)), key=lambda i: labels[i] in ("each seed", "95% interval of a single run"))
    first = models[0][0]
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper left", bbox_to_anchor=(1.01, 1),
              fontsize=9, title_fontsize=8, alignment="left",
              title=f"% over a bar: its gain over\n{first}, 1 - ppl / ppl({first})" if len(models) > 1 else None)
    ax.set_title(args.title, fontsize=13, fontweight="bold")
    save(fig, args.out)
    return f"{len(models)} model{'s' * (len(models) != 1)}, {len(domains) - 1} domains"


# ---- router -----------------------------------------------------------------


def plot_router(args):
    runs = [read_metrics(p, l) for p, l in parse_runs((args.runs or []) + (args.metrics or []))]
    series = {}  # label -> (run, colour, x, entropy[step, layer], experts used[step, layer])
    for run, colour in zip(runs, colours(runs)):
        records = [r for r in run.train if "routing_entropy" in r]
        if not records:
            continue
        try:
            entropy = np.array([r["routing_entropy"] for r in records], dtype=float)
            used = np.array([r.get("experts_used") or [math.nan] * len(r["routing_entropy"]) for r in records],
                            dtype=float)
        except (TypeError, ValueError):
            entropy = used = None
        if entropy is None or entropy.ndim != 2 or used.shape != entropy.shape:
            raise PlotError(f'{run.path}: "routing_entropy" and "experts_used" must be lists of one number per '
                            f"layer, the same length in every train record")
        series[run.label] = (run, colour, run.x(records, args.x), entropy, used)
    if not series:
        raise PlotError("no run has routing statistics (\"routing_entropy\" in its train records): "
                        "give the metrics.jsonl of a Lory run, not of a dense one")
    num_layers = min(s[3].shape[1] for s in series.values())
    layers = pick_layers(args.layers, num_layers)
    # The number of experts is in the upcycling event (train records do not name it).
    num_experts = next((e["num_experts"] for s in series.values() for e in s[0].upcycle if e.get("num_experts")), None)
    fig, axes = plt.subplots(2, len(layers), sharex=True, sharey="row", squeeze=False, layout="constrained",
                             figsize=(1.5 + 3.4 * len(layers), 5.6))
    for label, (run, colour, x, entropy, used) in series.items():
        for c, l in enumerate(layers):
            axes[0, c].plot(x, moving_average(entropy[:, l], args.smooth), color=colour, lw=1.4, label=label)
            axes[1, c].plot(x, used[:, l], color=colour, lw=1.4, drawstyle="steps-post")
    for c, l in enumerate(layers):
        axes[0, c].set_title(f"layer {l}", fontsize=11)
        axes[1, c].set_xlabel("training tokens" if args.x == "tokens" else "step")
        tokens_axis(axes[1, c], args.x)
        if num_experts:
            axes[0, c].axhline(math.log(num_experts), color="0.4", ls="--", lw=1)
            axes[1, c].axhline(num_experts, color="0.4", ls="--", lw=1)
        for ax in axes[:, c]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("routing entropy (nats)")
    axes[1, 0].set_ylabel("experts used")
    axes[1, 0].yaxis.set_major_locator(MaxNLocator(integer=True))
    if num_experts:
        axes[0, 0].annotate(f"uniform: log {num_experts}", (0.98, math.log(num_experts)), xytext=(0, -3), ha="right",
                            xycoords=("axes fraction", "data"), textcoords="offset points", va="top", fontsize=7,
                            color="0.3")
        axes[1, 0].annotate(f"all {num_experts} experts", (0.98, num_experts), xytext=(0, -3), ha="right",
                            xycoords=("axes fraction", "data"), textcoords="offset points", va="top", fontsize=7,
                            color="0.3")
    axes[0, -1].legend(loc="best", fontsize=8, framealpha=0.9)
    fig.suptitle(args.title, fontsize=12, fontweight="bold")
    save(fig, args.out)
    return f"{len(series)} run{'s' * (len(series) != 1)}, {len(layers)} layer{'s' * (len(layers) != 1)}"


# ---- command line -----------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="lory_plot.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{loss,routing,perplexity,router}")

    def command(name, help_text):
        p = commands.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--out", required=True, metavar="PNG", help="the image to write")
        return p

    def run_options(p):
        p.add_argument("--runs", action="append", metavar="LIST",
                       help="metrics.jsonl files, comma-separated, each optionally =LABEL (default: its directory)")
        p.add_argument("--metrics", action="append", metavar="LIST", help="the same as --runs (both may be given)")
        p.add_argument("--x", choices=("step", "tokens"), default="step", help="the x axis (default: step)")

    p = command("loss", "Training loss (lines) and held-out loss (dots) of runs against step, the switch marked.")
    run_options(p)
    p.add_argument("--smooth", type=int, default=1, metavar="N",
                   help="moving average over N train points (default 1: none)")
    p.add_argument("--diff", action="store_true",
                   help="a lower panel: each run's loss minus that of the first model's run with the same seed")
    p.add_argument("--title", default="Training loss", help="the figure's title")
    p.add_argument("--log-y", action="store_true", help="logarithmic loss axis")
    p.add_argument("--width", type=int, default=1500, metavar="PX", help="image width (default 1500)")
    p.add_argument("--height", type=int, default=900, metavar="PX", help="image height (default 900)")
    p.set_defaults(draw=plot_loss)

    p = command("routing", "Mean routing weight of each expert on each domain, per layer (Lory Fig. 6).")
    p.add_argument("--eval", required=True, metavar="JSON", help="an eval JSON written by lory_train or lory_eval")
    p.add_argument("--layers", metavar="LIST", help="comma-separated layer indices (default: first, middle, last)")
    p.add_argument("--title", help="the figure's title (default: names the checkpoint)")
    p.set_defaults(draw=plot_routing)

    p = command("perplexity", "Held-out perplexity per domain of several models, with the gain over the first.")
    p.add_argument("--compare", required=True, metavar="A=a.json,B=b1.json+b2.json",
                   help="models as lory_eval --compare takes them: LABEL=eval JSONs joined by + (one per seed), "
                        "globs allowed")
    p.add_argument("--title", default="Held-out perplexity per domain", help="the figure's title")
    p.add_argument("--log-y", action="store_true", help="logarithmic perplexity axis")
    p.set_defaults(draw=plot_perplexity)

    p = command("router", "Routing entropy and experts used per layer during training, from Lory runs.")
    run_options(p)
    p.add_argument("--layers", metavar="LIST", help="comma-separated layer indices (default: first, middle, last)")
    p.add_argument("--smooth", type=int, default=1, metavar="N",
                   help="moving average of the entropy over N points (default 1: none)")
    p.add_argument("--title", default="Routers during training", help="the figure's title")
    p.set_defaults(draw=plot_router)

    args = parser.parse_args(argv)
    if not (100 <= getattr(args, "width", 100) <= 16384 and 100 <= getattr(args, "height", 100) <= 16384):
        parser.error("--width and --height must be 100..16384 pixels")
    if getattr(args, "smooth", 1) < 1:
        parser.error("--smooth must be at least 1")
    try:
        what = args.draw(args)
    except PlotError as e:
        print(f"lory_plot: {e}", file=sys.stderr)
        return 1
    print(f"lory_plot: wrote {args.out} ({what})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
