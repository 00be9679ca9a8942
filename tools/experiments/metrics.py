"""Reading what the tools write: metrics.jsonl, eval JSONs, task-accuracy JSONs, and the table
lory_eval --compare writes (--out). Standard library only."""
import json
import math
import re


class ReadError(Exception):
    """A file the runner reads is missing or malformed: the message names it."""


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise ReadError(f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise ReadError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ReadError(f"{path}: not a JSON object")
    return doc


class Metrics:
    """One run's metrics.jsonl: train records (step order; a resumed run's repeated steps replace
    the abandoned ones, as lory_plot reads them) and the upcycling event."""

    def __init__(self, path):
        self.path = path
        self.train = []
        self.upcycle_step = None
        self.num_experts = None
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
        except OSError as e:
            raise ReadError(f"cannot read {path}: {e.strerror}") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError as e:
                raise ReadError(f"{path}:{n}: not valid JSON: {e}") from None
            if not isinstance(r, dict):
                continue
            if r.get("type") == "event" and r.get("event") == "upcycle":
                self.upcycle_step = r.get("step")
                self.num_experts = r.get("num_experts", self.num_experts)
            elif r.get("type") == "train" and isinstance(r.get("step"), (int, float)):
                while self.train and self.train[-1]["step"] >= r["step"]:
                    self.train.pop()
                loss = r.get("loss")
                r["loss"] = float(loss) if isinstance(loss, (int, float)) else math.nan
                self.train.append(r)
        if not self.train:
            raise ReadError(f"{path}: no train records")

    @property
    def last_step(self):
        return self.train[-1]["step"]

    def losses(self):
        return {r["step"]: r["loss"] for r in self.train}

    def window(self, fraction, total_steps=None):
        """The train records whose step lies in [start, end] fractions of the run (never before
        the dense-to-expert switch when the window starts at 0)."""
        total = total_steps or self.last_step
        lo, hi = fraction[0] * total, fraction[1] * total
        return [r for r in self.train if lo < r["step"] <= hi or (fraction[0] == 0 and r["step"] <= hi)]

    def last_with(self, key):
        for r in reversed(self.train):
            if isinstance(r.get(key), list):
                return r
        return None


def paired_series(runs, sign, window, total_steps=None):
    """sum_i sign[i] * loss of runs[i] at each logged step that every run has, for the steps
    inside `window` (fractions of the run): the per-step differences the loss claims average."""
    tables = [m.losses() for m in runs]
    total = total_steps or min(m.last_step for m in runs)
    lo, hi = window[0] * total, window[1] * total
    steps = sorted(set.intersection(*(set(t) for t in tables)))
    out = []
    for s in steps:
        if lo < s <= hi:
            vals = [t[s] for t in tables]
            if all(math.isfinite(v) for v in vals):
                out.append(sum(w * v for w, v in zip(sign, vals)))
    return out


def paired_curve(runs, sign):
    """(steps, tokens, values) of sum_i sign[i] * loss_i over every common logged step."""
    tables = [{r["step"]: r for r in m.train} for m in runs]
    steps = sorted(set.intersection(*(set(t) for t in tables)))
    xs, toks, ys = [], [], []
    for s in steps:
        vals = [t[s]["loss"] for t in tables]
        if all(math.isfinite(v) for v in vals):
            xs.append(s)
            toks.append(tables[0][s].get("tokens", math.nan))
            ys.append(sum(w * v for w, v in zip(sign, vals)))
    return xs, toks, ys


# ---- lory_eval --compare ------------------------------------------------------

def compare_rows(doc, where="lory_eval --compare"):
    """The per-domain rows of a `lory_eval --compare A=..,B=.. --out FILE` JSON, gains in %:
    {domain: {"tokens": n, "ppl": [per model], "sd": [per model, None for one seed],
    "gains": [{"gain": %, "lo": %, "hi": %, "beyond": bool} for each model after the first]}}
    (lo/hi NaN when a domain has too few blocks for an interval). Raises ReadError when the
    document has no domains."""
    domains = doc.get("domains") if isinstance(doc, dict) else None
    if not isinstance(domains, dict) or not domains:
        raise ReadError(f"{where}: no \"domains\" in its JSON")

    def pct(v):
        return 100 * float(v) if isinstance(v, (int, float)) else math.nan

    rows = {}
    for name, d in domains.items():
        try:
            rows[name] = {
                "tokens": int(d["tokens"]),
                "ppl": [float(p) for p in d["ppl"]],
                "sd": [float(x) if x is not None else None for x in d["sd"]],
                "gains": [{"gain": pct(g["gain"]), "lo": pct(g.get("lo")), "hi": pct(g.get("hi")),
                           "beyond": bool(g.get("significant"))} for g in d["gains"]],
            }
        except (KeyError, TypeError, ValueError) as e:
            raise ReadError(f"{where}: domain '{name}' is not a comparison row ({e!r})") from None
    return rows


def eval_loss(doc, domain):
    d = doc if domain == "all" else (doc.get("domains") or {}).get(domain)
    if not isinstance(d, dict):
        return math.nan
    v = d.get("loss")
    return float(v) if isinstance(v, (int, float)) else math.nan


def domains_of(doc):
    return list((doc.get("domains") or {}).keys())


def task_result(doc, task, metric):
    """(accuracy, stderr, per-example 0/1 list or None) of one task of a lory_eval --tasks JSON;
    task "mean": the mean over its tasks (stderr: root mean square / sqrt(tasks))."""
    tasks = doc.get("tasks") or {}
    names = list(tasks) if task == "mean" else [task]
    accs, ses, correct = [], [], []
    for name in names:
        t = tasks.get(name)
        if not isinstance(t, dict) or not isinstance(t.get(metric), (int, float)):
            return None, None, None
        accs.append(float(t[metric]))
        ses.append(float(t.get(metric + "_stderr") or 0.0))
        per = t.get("correct_norm" if metric == "acc_norm" else "correct")
        correct.append(per if isinstance(per, list) else None)
    if not accs:
        return None, None, None
    acc = sum(accs) / len(accs)
    se = math.sqrt(sum(s * s for s in ses)) / len(ses)
    flat = None if any(c is None for c in correct) else [x for c in correct for x in c]
    return acc, se, flat


MODEL_LINE_RE = re.compile(r"^model:\s*(.*)$", re.M)


def model_line(log_text):
    """What lory_train's first line says about the model ('dense, 4 layers, ...: 3.3M parameters (3.3M active)')."""
    m = MODEL_LINE_RE.search(log_text)
    return m.group(1).strip() if m else ""
