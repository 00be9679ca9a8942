"""From finished runs to report sections: tables with uncertainties, figure jobs (drawn later by
figures.py under a python with matplotlib) and the plan's claims, each judged from the numbers
(stats.judge). Missing runs or evaluations make "not run" cells and "not measured" verdicts,
never a crash: a report always says what it could and could not check."""
import math
import os
import shlex
import statistics

import metrics as M
import stats as S

# measure -> (unit, decimals); every Estimate is in these units, and so is a plan's `expect`
UNITS = {
    "final_loss": ("nats", 4),
    "loss_gap_difference": ("nats", 4),
    "loss_gap_growth": ("nats", 4),
    "ppl_gain": ("%", 2),
    "ppl_gain_difference": ("% points", 2),
    "accuracy_diff": ("points", 1),
    "experts_used": ("of the experts", 2),
    "experts_used_diff": ("of the experts", 2),
    "specialisation_layers": ("bits", 4),
    "specialisation_diff": ("bits", 4),
}


class ClaimResult:
    def __init__(self, claim, analysis, estimate, verdict, ours, details=None):
        self.claim, self.analysis, self.estimate, self.verdict = claim, analysis, estimate, verdict
        self.ours = ours            # our number as text, with its interval
        self.details = details or []  # extra lines (per domain, per seed)


class Section:
    def __init__(self, analysis):
        self.analysis = analysis
        self.lines = []       # markdown
        self.figures = []     # (file name, caption, command text)
        self.claims = []      # ClaimResult


class Context:
    """What the analyses of one plan read: its runs per (arm, seed) and evaluation outputs."""

    def __init__(self, plan, budget, seeds, runs, evals, runner, out_dir, python, failures):
        self.plan, self.budget, self.seeds = plan, budget, seeds
        self.runs = runs            # (arm, seed) -> RunSpec
        self.evals = evals          # (evaluation, arm, seed) -> JSON path or None
        self.runner = runner
        self.out_dir = out_dir      # OUT/<experiment>
        self.python = python
        self.failures = failures    # list of text: what failed, for the report
        self.figure_jobs = []
        self._metrics = {}
        self._docs = {}

    def label(self, arm):
        return self.plan.arms[arm].label

    def run(self, arm, seed):
        spec = self.runs.get((arm, seed))
        return spec if spec is not None and spec.state == "done" else None

    def metrics(self, arm, seed):
        spec = self.run(arm, seed)
        if spec is None:
            return None
        if spec.key not in self._metrics:
            try:
                self._metrics[spec.key] = M.Metrics(os.path.join(spec.dir, "metrics.jsonl"))
            except M.ReadError as e:
                self.failures.append(str(e))
                self._metrics[spec.key] = None
        return self._metrics[spec.key]

    def eval_path(self, evaluation, arm, seed):
        if self.run(arm, seed) is None:
            return None
        if evaluation == "train":
            return os.path.join(self.run(arm, seed).dir, "eval.json")
        path = self.evals.get((evaluation, arm, seed))
        return path if path and os.path.isfile(path) else None

    def doc(self, evaluation, arm, seed):
        path = self.eval_path(evaluation, arm, seed)
        if path is None:
            return None
        if path not in self._docs:
            try:
                self._docs[path] = M.read_json(path)
            except M.ReadError as e:
                self.failures.append(str(e))
                self._docs[path] = None
        return self._docs[path]

    def seeds_with(self, items):
        """The seeds on which every (arm, evaluation or None for metrics) item exists."""
        out = []
        for s in self.seeds:
            ok = True
            for arm, evaluation in items:
                if evaluation is None:
                    ok = ok and self.metrics(arm, s) is not None
                else:
                    ok = ok and self.eval_path(evaluation, arm, s) is not None
            if ok:
                out.append(s)
        return out

    def num_experts(self, arm):
        for s in self.seeds:
            spec = self.runs.get((arm, s))
            if spec is not None and spec.resolved:
                return int(spec.flat().get("model.num_experts") or 0)
        return 0

    def rel(self, path):
        """A path as the report's commands name it (relative to the directory the runner ran in)."""
        return os.path.relpath(path)

    def figure(self, section, name, caption, job):
        """Queues a figure: job is {"kind": "lory_plot", "argv": [...]} or a custom figures.py job."""
        out = os.path.join(self.out_dir, name)
        job = dict(job, out=out)
        if job["kind"] == "lory_plot":
            job["argv"] = job["argv"] + ["--out", out]
            command = f"{self.python} tools/lory_plot.py " + " ".join(shlex.quote(a) for a in job["argv"])
        else:
            command = f"{self.python} tools/experiments/figures.py {self.rel(self.out_dir)}/figures.json  # '{name}'"
        self.figure_jobs.append(job)
        section.figures.append((name, caption, command))


# ---- helpers --------------------------------------------------------------------


def number_formatter(measure, signed=True):
    """How a measure's numbers are written: fixed decimals, or two significant digits for a value
    too small for them (a tiny model's differences)."""
    decimals = UNITS[measure][1]

    def f(x):
        if x is None or not math.isfinite(x):
            return "n/a"
        text = f"{x:.{decimals}f}"
        if x != 0 and float(text) == 0:
            text = f"{x:.2g}"
        if float(text) == 0:
            return "0"
        return "+" + text if signed and x > 0 else text
    return f


def fmt_est(est, measure, signed=True):
    unit = UNITS[measure][0]
    if est is None or not est.measured():
        return "not measured"
    f = number_formatter(measure, signed)
    text = f(est.value)
    if est.lo is not None and est.hi is not None:
        text += f" [{f(est.lo)}, {f(est.hi)}]"
    return f"{text} {unit}"


def resolve_layer(layer, num_layers):
    if layer == "first":
        return 0
    if layer == "middle":
        return num_layers // 2
    if layer == "last":
        return num_layers - 1
    return layer


def final_loss(m, window):
    rs = m.window(window)
    vals = [r["loss"] for r in rs if math.isfinite(r["loss"])]
    return statistics.fmean(vals) if vals else math.nan


def mean_or_nan(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(values) if values else math.nan


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def smooth_window(n_records):
    return max(1, min(25, n_records // 15))


# ---- claims ---------------------------------------------------------------------


def judge_claim(ctx, claim, analysis_name):
    measure = claim.measure
    fn = globals()["measure_" + measure]
    try:
        est, details = fn(ctx, claim)
    except (M.ReadError, KeyError, ValueError, IndexError, TypeError) as e:
        ctx.failures.append(f"claim '{claim.paper[:60]}...' ({measure}): {e}")
        est, details = None, [f"could not be measured: {e}"]
    if measure == "ppl_gain" and claim.domain == "each" and est is not None and est.measured():
        verdict = est.verdict  # set by measure_ppl_gain: one verdict over every domain
    else:
        verdict = S.judge(claim.expect, est, number_formatter(measure))
    ours = fmt_est(est, measure, signed=measure != "experts_used")
    if est is not None and est.how:
        details = [est.how] + details
    return ClaimResult(claim, analysis_name, est, verdict, ours, details)


def loss_seeds(ctx, arms):
    return ctx.seeds_with([(a, None) for a in arms])


def measure_final_loss(ctx, c):
    seeds = loss_seeds(ctx, [c.a, c.b])
    per_seed = [[(M.paired_series([ctx.metrics(c.b, s), ctx.metrics(c.a, s)], [1, -1], ctx.budget.final_window), 1)]
                for s in seeds]
    est = S.bootstrap_seeds_and_steps(per_seed)
    w = ctx.budget.final_window
    return est, [f"{c.b} minus {c.a}: mean training loss over steps in {w[0]:.0%}-{w[1]:.0%} of the run, "
                 f"paired step by step; seeds {', '.join(map(str, seeds)) or 'none'}"]


def gap_components(ctx, pairs, s, window):
    (a1, b1), (a2, b2) = pairs
    runs = [ctx.metrics(x, s) for x in (b1, a1, b2, a2)]
    return M.paired_series(runs, [1, -1, -1, 1], window)


def measure_loss_gap_difference(ctx, c):
    arms = [x for p in c.pairs for x in p]
    seeds = loss_seeds(ctx, arms)
    per_seed = [[(gap_components(ctx, c.pairs, s, ctx.budget.final_window), 1)] for s in seeds]
    (a1, b1), (a2, b2) = c.pairs
    return S.bootstrap_seeds_and_steps(per_seed), [
        f"({b1} - {a1}) - ({b2} - {a2}) of the training loss over steps in {ctx.budget.final_window[0]:.0%}-"
        f"{ctx.budget.final_window[1]:.0%} of the run; seeds {', '.join(map(str, seeds)) or 'none'}"]


def measure_loss_gap_growth(ctx, c):
    arms = [x for p in c.pairs for x in p]
    seeds = loss_seeds(ctx, arms)
    per_seed = [[(gap_components(ctx, c.pairs, s, ctx.budget.final_window), 1),
                 (gap_components(ctx, c.pairs, s, ctx.budget.early_window), -1)] for s in seeds]
    e, f = ctx.budget.early_window, ctx.budget.final_window
    return S.bootstrap_seeds_and_steps(per_seed), [
        f"the difference of gaps late ({f[0]:.0%}-{f[1]:.0%} of the run) minus early ({e[0]:.0%}-{e[1]:.0%}); "
        f"negative: the gap difference grows with training"]


def measure_ppl_gain(ctx, c):
    seeds = ctx.seeds_with([(c.a, c.evaluation), (c.b, c.evaluation_b)])
    if not seeds:
        return None, []
    rows = compare_rows(ctx, [(c.a, c.evaluation), (c.b, c.evaluation_b)], seeds)
    how = (f"95% paired bootstrap over held-out document blocks and {len(seeds)} seed{'s' * (len(seeds) != 1)} "
           f"(lory_eval --compare)")
    if c.domain != "each":
        if c.domain not in rows:
            raise KeyError(f"domain '{c.domain}' is not in the evaluation (domains: {', '.join(rows)})")
        g = rows[c.domain]["gains"][0]
        return S.Estimate(g["gain"], g["lo"], g["hi"], how, len(seeds)), \
            [f"domain: {c.domain}: {g['gain']:+.2f}% [{g['lo']:+.2f}, {g['hi']:+.2f}]"]
    details, verdicts = [], []
    for domain, row in rows.items():
        if domain == "all":
            continue
        g = row["gains"][0]
        v = S.judge(c.expect, S.Estimate(g["gain"], g["lo"], g["hi"], how, len(seeds)), number_formatter("ppl_gain"))
        verdicts.append(v.status)
        details.append(f"{domain}: {g['gain']:+.1f}% [{g['lo']:+.1f}, {g['hi']:+.1f}]: {v.status}")
    g = rows["all"]["gains"][0]
    est = S.Estimate(g["gain"], g["lo"], g["hi"], how + "; the value is over all domains", len(seeds))
    n = len(verdicts)
    if all(v == "agrees" for v in verdicts):
        est.verdict = S.Verdict("agrees", f"every domain ({n}/{n}) agrees beyond the uncertainty")
    elif any(v == "disagrees" for v in verdicts):
        bad = [d.split(":")[0] for d in details if d.endswith("disagrees")]
        est.verdict = S.Verdict("disagrees", f"{len(bad)}/{n} domains contradict it beyond the uncertainty: "
                                             f"{', '.join(bad)}")
    else:
        ok = sum(v == "agrees" for v in verdicts)
        est.verdict = S.Verdict("inconclusive", f"{ok}/{n} domains agree beyond the uncertainty, none contradicts it")
    return est, details


def measure_ppl_gain_difference(ctx, c):
    (a1, b1), (a2, b2) = c.pairs
    ev = c.evaluation
    seeds = ctx.seeds_with([(x, ev) for x in (a1, b1, a2, b2)])
    if not seeds:
        return None, []
    g1 = compare_rows(ctx, [(a1, ev), (b1, ev)], seeds)[c.domain]["gains"][0]
    g2 = compare_rows(ctx, [(a2, ev), (b2, ev)], seeds)[c.domain]["gains"][0]
    value = g1["gain"] - g2["gain"]
    lo = value - ((g1["gain"] - g1["lo"]) ** 2 + (g2["hi"] - g2["gain"]) ** 2) ** 0.5
    hi = value + ((g1["hi"] - g1["gain"]) ** 2 + (g2["gain"] - g2["lo"]) ** 2) ** 0.5
    how = (f"95% interval combining the two gains' paired-bootstrap intervals (lory_eval --compare) as if "
           f"independent: conservative, since both gains are measured on the same held-out blocks")
    return S.Estimate(value, lo, hi, how, len(seeds)), [
        f"domain {c.domain}: gain of {b1} over {a1} {g1['gain']:+.1f}% [{g1['lo']:+.1f}, {g1['hi']:+.1f}] minus "
        f"gain of {b2} over {a2} {g2['gain']:+.1f}% [{g2['lo']:+.1f}, {g2['hi']:+.1f}]"]


def compare_rows(ctx, models, seeds):
    """lory_eval --compare of [(arm, evaluation)] over the given seeds; its rows (metrics.compare_rows)."""
    labelled = [(model_label(ctx, arm, ev, models), [ctx.eval_path(ev, arm, s) for s in seeds]) for arm, ev in models]
    doc, command = ctx.runner.compare(labelled)
    return M.compare_rows(doc, command)


def model_label(ctx, arm, evaluation, models):
    """A label lory_eval --compare accepts (no ',', '=', '+'): the arm, with the evaluation when
    one arm appears under several."""
    several = len({e for a, e in models if a == arm}) > 1
    name = f"{arm}:{'causal_segment' if evaluation == 'train' else evaluation}" if several else arm
    return name.replace(",", "_").replace("=", "_").replace("+", "_")


def measure_accuracy_diff(ctx, c):
    seeds = ctx.seeds_with([(c.a, c.evaluation), (c.b, c.evaluation_b)])
    pairs = []
    for s in seeds:
        ra = M.task_result(ctx.doc(c.evaluation, c.a, s), c.task, c.metric)
        rb = M.task_result(ctx.doc(c.evaluation_b, c.b, s), c.task, c.metric)
        if ra[0] is None or rb[0] is None:
            raise KeyError(f"task '{c.task}' ({c.metric}) is missing from an accuracy JSON of seed {s}")
        pairs.append((ra, rb))
    est = S.accuracy_difference(pairs, scale=100.0)
    return est, [f"task: {c.task} ({c.metric}); {c.b} ({c.evaluation_b}) minus {c.a} ({c.evaluation})"]


def experts_fraction(ctx, arm, s):
    """Experts used per layer as a fraction of E, at the last train record that has them."""
    m = ctx.metrics(arm, s)
    if m is None:
        return None
    r = m.last_with("experts_used")
    E = m.num_experts or ctx.num_experts(arm)
    if r is None or not E:
        return None
    return [u / E for u in r["experts_used"]]


def measure_experts_used(ctx, c):
    vals = []
    for s in ctx.seeds_with([(c.arm, None)]):
        f = experts_fraction(ctx, c.arm, s)
        if f:
            vals.append(min(f))
    return S.seed_range(vals, "smallest per-layer fraction"), [
        f"{c.arm}: experts used (weight > 2/E in some segment over the last log.utilisation_window steps, "
        f"paper G.1) at the end of training, the layer with the fewest"]


def measure_experts_used_diff(ctx, c):
    vals = []
    for s in ctx.seeds_with([(c.a, None), (c.b, None)]):
        fa, fb = experts_fraction(ctx, c.a, s), experts_fraction(ctx, c.b, s)
        if fa and fb:
            vals.append(statistics.fmean(fb) - statistics.fmean(fa))
    return S.seed_range(vals, "paired difference"), [f"{c.b} minus {c.a}: mean over layers of the fraction of "
                                                     f"experts used at the end of training"]


def specialisation(ctx, arm, s, evaluation="train"):
    doc = ctx.doc(evaluation, arm, s)
    js = doc.get("routing_specialisation") if doc else None
    return [float(x) for x in js] if isinstance(js, list) and js else None


def measure_specialisation_layers(ctx, c):
    vals = []
    for s in ctx.seeds_with([(c.arm, c.evaluation)]):
        js = specialisation(ctx, c.arm, s, c.evaluation)
        if js:
            la, lb = resolve_layer(c.layer_a, len(js)), resolve_layer(c.layer_b, len(js))
            vals.append(js[lb] - js[la])
    return S.seed_range(vals, "difference"), [f"{c.arm}: routing specialisation (mean pairwise Jensen-Shannon "
                                              f"divergence between domains, bits) of layer {c.layer_b} minus "
                                              f"layer {c.layer_a}"]


def measure_specialisation_diff(ctx, c):
    vals = []
    for s in ctx.seeds_with([(c.a, c.evaluation), (c.b, c.evaluation_b)]):
        ja, jb = specialisation(ctx, c.a, s, c.evaluation), specialisation(ctx, c.b, s, c.evaluation_b)
        if ja and jb:
            if c.layer == "mean":
                vals.append(statistics.fmean(jb) - statistics.fmean(ja))
            else:
                vals.append(jb[resolve_layer(c.layer, len(jb))] - ja[resolve_layer(c.layer, len(ja))])
    return S.seed_range(vals, "paired difference"), [f"{c.b} minus {c.a}: routing specialisation (bits), "
                                                     f"{'mean over layers' if c.layer == 'mean' else 'layer ' + str(c.layer)}"]


# ---- analyses -------------------------------------------------------------------


def run_analysis(ctx, analysis):
    section = Section(analysis)
    if analysis.text:
        section.lines += [analysis.text.strip(), ""]
    globals()["analyse_" + analysis.kind](ctx, analysis, section)
    section.claims = [judge_claim(ctx, c, analysis.name) for c in analysis.claims]
    return section


def metric_runs_arg(ctx, arms):
    items = []
    for arm in arms:
        for s in ctx.seeds:
            if ctx.metrics(arm, s) is not None:
                items.append(f"{ctx.rel(os.path.join(ctx.run(arm, s).dir, 'metrics.jsonl'))}={arm} seed {s}")
    return items


def analyse_loss_curves(ctx, a, section):
    items = metric_runs_arg(ctx, a.arms)
    first = a.arms[0]
    n = max((len(ctx.metrics(arm, s).train) for arm in a.arms for s in ctx.seeds if ctx.metrics(arm, s)), default=0)
    if items:
        argv = ["loss", "--runs", ",".join(items), "--smooth", str(smooth_window(n)), "--x", "tokens",
                "--title", a.title or "Training loss"]
        if len(a.arms) > 1 and any(ctx.metrics(first, s) for s in ctx.seeds):
            argv.append("--diff")
        ctx.figure(section, f"{a.name}.png", a.title or "Training loss", {"kind": "lory_plot", "argv": argv})
    w = ctx.budget.final_window
    rows = []
    for arm in a.arms:
        finals = [final_loss(ctx.metrics(arm, s), w) for s in ctx.seeds if ctx.metrics(arm, s)]
        if arm == first or not finals:
            diff = ""
        else:
            seeds = loss_seeds(ctx, [first, arm])
            est = S.bootstrap_seeds_and_steps(
                [[(M.paired_series([ctx.metrics(arm, s), ctx.metrics(first, s)], [1, -1], w), 1)] for s in seeds])
            diff = fmt_est(est, "final_loss")
        rows.append([arm, model_text(ctx, arm), seeds_text(ctx, arm), S.fmt_mean_sd(finals, 4) if finals else "not run",
                     diff, time_text(ctx, arm)])
    section.lines += table(["arm", "model", "seeds", f"training loss, steps {w[0]:.0%}-{w[1]:.0%} (mean ± sd over seeds)",
                            f"minus {first} [95%]", "training time per run"], rows)
    section.lines += ["", f"The difference is paired step by step (same seed: same initialisation of the shared "
                          f"parts and the same batches), its interval a bootstrap over seeds and blocks of steps."]


def model_text(ctx, arm):
    for s in ctx.seeds:
        spec = ctx.run(arm, s)
        if spec:
            text = model_text_of(spec)
            if text:
                return text
    return ""


def model_text_of(spec):
    """'E 8, T 64: 11.6M parameters (3.4M active)': the experts and segment length of the resolved
    config, the parameter counts from the first line of the run's train.log."""
    flat = spec.flat()
    E = flat.get("model.num_experts") or 0
    moe = flat.get("model.moe_type", "lory")
    shape = "dense" if not E else f"{'' if moe == 'lory' else moe + ', '}E {E}, T {flat.get('model.segment_length')}"
    try:
        with open(os.path.join(spec.dir, "train.log"), encoding="utf-8", errors="replace") as f:
            line = M.model_line(f.read())
    except OSError:
        line = ""
    counts = line.rsplit(":", 1)[-1].strip() if line else ""
    return f"{shape}: {counts}" if counts else shape


def seeds_text(ctx, arm):
    done = [s for s in ctx.seeds if ctx.run(arm, s)]
    return f"{len(done)}/{len(ctx.seeds)}"


def time_text(ctx, arm):
    secs = [ctx.runner.read_seconds(ctx.run(arm, s)) for s in ctx.seeds if ctx.run(arm, s)]
    secs = [x for x in secs if x]
    return f"{statistics.fmean(secs):.0f} s" if secs else ""


def analyse_loss_gap(ctx, a, section):
    arms = list(dict.fromkeys(x for p in a.pairs for x in p))
    items = metric_runs_arg(ctx, arms)
    n = max((len(ctx.metrics(arm, s).train) for arm in arms for s in ctx.seeds if ctx.metrics(arm, s)), default=0)
    sm = smooth_window(n)
    if items:
        ctx.figure(section, f"{a.name}-loss.png", "Training loss of every arm",
                   {"kind": "lory_plot", "argv": ["loss", "--runs", ",".join(items), "--smooth", str(sm), "--x",
                                                  "tokens", "--title", (a.title or "Training loss") + ": training loss"]})
    curves = []
    for ref, model in a.pairs:
        per_seed = []
        for s in loss_seeds(ctx, [ref, model]):
            steps, tokens, ys = M.paired_curve([ctx.metrics(model, s), ctx.metrics(ref, s)], [1, -1])
            per_seed.append({"seed": s, "step": steps, "tokens": tokens, "value": ys})
        curves.append({"label": f"{ctx.label(model)} - {ctx.label(ref)}", "seeds": per_seed})
    if any(c["seeds"] for c in curves):
        ctx.figure(section, f"{a.name}.png", a.title or "Training-loss gap",
                   {"kind": "gap", "title": a.title or "Training-loss gap", "curves": curves, "smooth": sm,
                    "ylabel": "training loss difference (nats)"})
    rows = []
    for window_name, w in (("early", ctx.budget.early_window), ("final", ctx.budget.final_window)):
        cells = []
        for ref, model in a.pairs:
            seeds = loss_seeds(ctx, [ref, model])
            est = S.bootstrap_seeds_and_steps(
                [[(M.paired_series([ctx.metrics(model, s), ctx.metrics(ref, s)], [1, -1], w), 1)] for s in seeds])
            cells.append(fmt_est(est, "final_loss"))
        if len(a.pairs) == 2:
            seeds = loss_seeds(ctx, arms)
            est = S.bootstrap_seeds_and_steps([[(gap_components(ctx, a.pairs, s, w), 1)] for s in seeds])
            cells.append(fmt_est(est, "loss_gap_difference"))
        rows.append([f"{window_name} ({w[0]:.0%}-{w[1]:.0%} of the run)"] + cells)
    header = ["window"] + [f"{m} - {r} [95%]" for r, m in a.pairs]
    if len(a.pairs) == 2:
        header.append("difference of the two gaps [95%]")
    section.lines += table(header, rows)
    section.lines += ["", "Each gap is paired step by step within a seed; intervals: bootstrap over seeds and "
                          "blocks of logged steps."]


def available_models(ctx, a, section):
    """The (arm, evaluation) pairs of an analysis that have results, and the seeds they share; the
    missing ones are named in the section (their runs failed or were not made)."""
    models = [(arm, ev) for ev in a.evaluations for arm in a.arms]
    present = [m for m in models if ctx.seeds_with([m])]
    missing = [m for m in models if m not in present]
    seeds = ctx.seeds_with(present)
    if missing:
        names = ", ".join(f"{arm}" + (f" ({ev})" if ev != "train" else "") for arm, ev in missing)
        section.lines += [f"*Not in this table (no result; see Problems): {names}.*", ""]
    if not seeds or not present:
        section.lines += ["Not measured: no seed has the evaluations this table needs.", ""]
        return [], []
    return present, seeds


def analyse_perplexity(ctx, a, section):
    models, seeds = available_models(ctx, a, section)
    if not models:
        return
    labelled = [(model_label(ctx, arm, ev, models), [ctx.eval_path(ev, arm, s) for s in seeds]) for arm, ev in models]
    try:
        doc, command = ctx.runner.compare(labelled)
    except Exception as e:  # noqa: BLE001 (reported, never hidden)
        ctx.failures.append(f"perplexity table '{a.name}': {e}")
        section.lines += [f"Not measured: {e}", ""]
        return
    rows = M.compare_rows(doc, command)
    labels = [label for label, _ in labelled]
    header = ["domain", "tokens"] + [f"{l} ppl" for l in labels] + [f"gain {l} [95%]" for l in labels[1:]]
    body = []
    for domain, r in rows.items():
        ppl = [f"{p:.2f}" + (f" ± {sd:.2f}" if sd is not None else "") for p, sd in zip(r["ppl"], r["sd"])]
        gains = [f"{g['gain']:+.1f}% [{g['lo']:+.1f}, {g['hi']:+.1f}]{' *' if g['beyond'] else ''}" for g in r["gains"]]
        name = f"**{domain}**" if domain == "all" else domain
        body.append([name, r["tokens"]] + ppl + gains)
    section.lines += table(header, body)
    section.lines += ["", f"Held-out perplexity per domain over seed{'s' * (len(seeds) != 1)} "
                          f"{', '.join(map(str, seeds))}: the perplexity of the seeds' mean loss ± the seeds' standard "
                          f"deviation; gain = 1 - ppl / ppl({labels[0]}); [95%]: paired bootstrap over held-out document "
                          f"blocks and seeds; * = the interval excludes 0. Printed by `{command}`.", ""]
    spec = ",".join(f"{l}={'+'.join(ctx.rel(p) for p in paths)}" for l, paths in labelled)
    ctx.figure(section, f"{a.name}.png", a.title or "Held-out perplexity per domain",
               {"kind": "lory_plot", "argv": ["perplexity", "--compare", spec, "--title",
                                              a.title or "Held-out perplexity per domain"]})


def analyse_accuracy(ctx, a, section):
    metric = a.metric
    models, seeds = available_models(ctx, a, section)
    if not models:
        return
    labels = [model_label(ctx, arm, ev, models) for arm, ev in models]
    tasks = []
    for arm, ev in models:
        for t in (ctx.doc(ev, arm, seeds[0]) or {}).get("tasks", {}):
            if t not in tasks:
                tasks.append(t)
    settings = []
    for ev in dict.fromkeys(e for _, e in models):
        doc = ctx.doc(ev, models[0][0], seeds[0]) or {}
        n = {t: v.get("examples") for t, v in doc.get("tasks", {}).items()}
        settings.append(f"`{ev}`: {doc.get('shots')}-shot, {doc.get('routing')} routing, "
                        f"test examples {', '.join(f'{t} {k}' for t, k in n.items())}")
    header = ["task"] + [f"{l} {metric} (± stderr)" for l in labels] + [f"{l} - {labels[0]} [95%]" for l in labels[1:]]
    body = []
    bars = []
    for task in tasks + ["mean"]:
        cells, diffs = [], []
        for i, (arm, ev) in enumerate(models):
            res = [M.task_result(ctx.doc(ev, arm, s), task, metric) for s in seeds]
            accs = [r[0] for r in res if r[0] is not None]
            ses = [r[1] for r in res if r[1] is not None]
            if not accs:
                cells.append("n/a")
                continue
            se = math.sqrt(statistics.fmean(x * x for x in ses)) if ses else math.nan
            m, sd = S.mean_sd(accs)
            cells.append(f"{100 * m:.1f}" + (f" ± {100 * sd:.1f} (seeds)" if sd is not None else "") +
                         f" ± {100 * se:.1f}")
            bars.append({"task": task, "model": labels[i], "acc": m, "stderr": se,
                         "seeds": accs})
            if i > 0:
                ra = [M.task_result(ctx.doc(models[0][1], models[0][0], s), task, metric) for s in seeds]
                est = S.accuracy_difference(list(zip(ra, res)), scale=100.0)
                diffs.append(fmt_est(est, "accuracy_diff"))
        body.append([f"**{task}**" if task == "mean" else task] + cells + diffs)
    section.lines += table(header, body)
    chance = chance_text(ctx, tasks)
    section.lines += ["", f"Accuracy in % ({metric}; mean over seed{'s' * (len(seeds) != 1)} "
                          f"{', '.join(map(str, seeds))}, ± the seeds' standard deviation where there are several, "
                          f"± the binomial standard error of one run, as lm-evaluation-harness reports it). "
                          f"Differences: 95% interval, unpaired unless the JSONs carry per-example results. "
                          f"{'; '.join(settings)}.{chance}", ""]
    if bars:
        ctx.figure(section, f"{a.name}.png", a.title or "Multiple-choice accuracy",
                   {"kind": "accuracy", "title": a.title or "Multiple-choice accuracy", "bars": bars,
                    "ylabel": f"{metric} (%)", "chance": chance_levels(ctx, tasks)})


def chance_levels(ctx, tasks):
    """1 / choices of each task, read from its task file (first test example)."""
    import json
    levels = {}
    for path in ctx.runner.task_paths_seen:
        name = os.path.splitext(os.path.basename(path))[0]
        if name in tasks and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        ex = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(ex.get("choices"), list) and ex["choices"]:
                        levels[name] = 1 / len(ex["choices"])
                        break
    return levels


def chance_text(ctx, tasks):
    levels = chance_levels(ctx, tasks)
    if not levels:
        return ""
    return " Chance: " + ", ".join(f"{t} {100 * v:.1f}%" for t, v in levels.items()) + "."


def analyse_utilisation(ctx, a, section):
    lory = [arm for arm in a.arms if ctx.num_experts(arm) > 0]
    items = metric_runs_arg(ctx, lory)
    n = max((len(ctx.metrics(arm, s).train) for arm in lory for s in ctx.seeds if ctx.metrics(arm, s)), default=0)
    if items:
        argv = ["router", "--runs", ",".join(items), "--smooth", str(smooth_window(n)), "--x", "tokens",
                "--title", a.title or "Expert utilisation during training"]
        if a.layers:
            argv += ["--layers", ",".join(str(l) for l in a.layers)]
        ctx.figure(section, f"{a.name}.png", a.title or "Routing entropy and experts used during training",
                   {"kind": "lory_plot", "argv": argv})
    rows = []
    for arm in lory:
        E = ctx.num_experts(arm)
        used, ent, mid = [], [], []
        for s in ctx.seeds:
            m = ctx.metrics(arm, s)
            if m is None:
                continue
            r = m.last_with("experts_used")
            if r:
                used.append(r["experts_used"])
                ent.append(r.get("routing_entropy") or [])
            recs = [x for x in m.train if isinstance(x.get("experts_used"), list)]
            if recs:
                mid.append(recs[len(recs) // 2]["experts_used"])
        if not used:
            rows.append([arm, E, "not measured", "", "", ""])
            continue
        layers = len(used[0])
        dec = 1 if len(used) > 1 else 0  # counts: whole numbers for one seed, means for several
        per_layer = [S.fmt_mean_sd([u[l] for u in used if len(u) > l], dec) for l in range(layers)]
        mid_layer = [S.fmt_mean_sd([u[l] for u in mid if len(u) > l], dec) for l in range(layers)] if mid else []
        ent_layer = [S.fmt_mean_sd([e[l] for e in ent if len(e) > l], 2) for l in range(layers)]
        frac = [min(u) / E for u in used]
        rows.append([arm, E, " / ".join(mid_layer), " / ".join(per_layer), S.fmt_mean_sd(frac, 2),
                     " / ".join(ent_layer) + f" (uniform {math.log(E):.2f})"])
    if rows:
        section.lines += table(["arm", "E", "experts used per layer, mid-training", "experts used per layer, end",
                                "fewest used / E, end", "routing entropy per layer, end (nats)"], rows)
        section.lines += ["", "Experts used: weight > 2/E in some segment over the last `log.utilisation_window` "
                              "steps (paper G.1), per layer (layer 0 first), mean ± sd over seeds, from metrics.jsonl.",
                          ""]


def analyse_routing_heatmaps(ctx, a, section):
    for arm in a.arms:
        seeds = [s for s in ctx.seeds if ctx.eval_path(a.evaluation, arm, s)]
        if not seeds:
            section.lines += [f"{arm}: not measured (no evaluation).", ""]
            continue
        path = ctx.eval_path(a.evaluation, arm, seeds[0])
        doc = ctx.doc(a.evaluation, arm, seeds[0]) or {}
        if not doc.get("routing_weights"):
            section.lines += [f"{arm}: its eval JSON has no routing weights (not a Lory model?).", ""]
            continue
        argv = ["routing", "--eval", ctx.rel(path), "--title",
                f"{ctx.label(arm)} (seed {seeds[0]}): mean routing weight per domain"]
        if a.layers:
            argv += ["--layers", ",".join(str(l) for l in a.layers)]
        ctx.figure(section, f"{a.name}-{arm}.png", f"{ctx.label(arm)}, seed {seeds[0]}: mean routing weight of "
                                                    f"each expert per domain, first, middle and last layer",
                   {"kind": "lory_plot", "argv": argv})


def analyse_specialisation(ctx, a, section):
    rows, bars = [], []
    layers = 0
    for arm in a.arms:
        vals = [specialisation(ctx, arm, s, a.evaluation) for s in ctx.seeds]
        vals = [v for v in vals if v]
        if not vals:
            rows.append([arm, "not measured"])
            continue
        layers = max(layers, len(vals[0]))
        cells = [S.fmt_mean_sd([v[l] for v in vals if len(v) > l], 4) for l in range(len(vals[0]))]
        mean = S.fmt_mean_sd([statistics.fmean(v) for v in vals], 4)
        rows.append([arm] + cells + [mean])
        bars.append({"model": ctx.label(arm), "seeds": vals})
    header = ["arm"] + [f"layer {l}" for l in range(layers)] + ["mean"]
    rows = [r + [""] * (len(header) - len(r)) for r in rows]
    section.lines += table(header, rows)
    section.lines += ["", "Routing specialisation: the mean pairwise Jensen-Shannon divergence (bits; 0 = every "
                          "domain routed alike, 1 = disjoint) between the domains' mean routing distributions on "
                          "held-out text, per layer (`routing_specialisation` of the eval JSON), mean ± sd over seeds.",
                      ""]
    if bars:
        ctx.figure(section, f"{a.name}.png", a.title or "Routing specialisation per layer",
                   {"kind": "specialisation", "title": a.title or "Routing specialisation per layer", "bars": bars})
