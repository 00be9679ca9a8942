"""Plans and budgets: reading and checking the TOML files of tools/experiments.

A plan (plans/NAME.toml) says what one experiment trains (arms: a base config
plus overrides), what it evaluates beyond the held-out perplexity every
training run ends with (evaluations), and what it draws and tabulates
(analyses), each with the paper's claims it checks. A budget (budgets.toml)
says how big every run is: data, model size, tokens, seeds. README.md next to
this file documents every key; this module refuses anything else, naming the
file and the key.
"""
import math
import os
import re
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
PLANS_DIR = os.path.join(HERE, "plans")
BUDGETS_FILE = os.path.join(HERE, "budgets.toml")


class PlanError(Exception):
    """A plan or budget file is wrong: the message names the file, the table and the key."""


# ---- small checkers -----------------------------------------------------------


def load_toml(path):
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise PlanError(f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise PlanError(f"{path}: not valid TOML: {e}") from None


def check_keys(table, allowed, where):
    unknown = [k for k in table if k not in allowed]
    if unknown:
        raise PlanError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")


def need(table, key, kind, where, default=None, required=False):
    """table[key] checked against a type (str, int, float, bool, list, dict); default when absent."""
    if key not in table:
        if required:
            raise PlanError(f"{where}: missing key '{key}'")
        return default
    value = table[key]
    ok = {
        str: isinstance(value, str),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        bool: isinstance(value, bool),
        list: isinstance(value, list),
        dict: isinstance(value, dict),
    }[kind]
    if not ok:
        names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
                 dict: "a table"}
        raise PlanError(f"{where}: '{key}' must be {names[kind]}, got {value!r}")
    return value


def string_list(table, key, where, default=None, required=False):
    value = need(table, key, list, where, default=default, required=required)
    if value is None:
        return None
    for v in value:
        if not isinstance(v, str):
            raise PlanError(f"{where}: '{key}' must be a list of strings, got {value!r}")
    return list(value)


def flatten_overrides(table, where, prefix=""):
    """{'model': {'hidden_size': 64}, 'schedule.tokens': 1e5} -> {'model.hidden_size': 64, 'schedule.tokens': 100000}.

    Both the nested form (TOML's dotted keys, [x.overrides.model]) and quoted
    "section.key" names are accepted; every key must end up as section.key."""
    flat = {}
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(flatten_overrides(value, where, name))
            continue
        if name.count(".") != 1 or not all(re.fullmatch(r"[a-z_][a-z0-9_]*", p) for p in name.split(".")):
            raise PlanError(f"{where}: override '{name}' is not a lory_train config key of the form section.key "
                            f"(lory_train --help-config lists them)")
        if isinstance(value, list) or isinstance(value, float) and not math.isfinite(value):
            raise PlanError(f"{where}: override '{name}' must be a string, number or boolean, got {value!r}")
        flat[name] = value
    return flat


def override_text(value):
    """How a TOML value is written on lory_train's command line (--section.key=TEXT)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value)) if abs(value) >= 1 else repr(value)
    return str(value)


# ---- budgets ------------------------------------------------------------------

BUDGET_KEYS = {"description", "data", "prepare", "seeds", "overrides", "configs", "tasks", "final_window",
               "early_window", "figures"}
TASK_KEYS = {"examples", "train_examples", "shots", "context_bytes", "continuation_bytes", "max_examples", "seed"}


class Budget:
    def __init__(self, name, table, path):
        where = f"{path}: [{name}]"
        check_keys(table, BUDGET_KEYS, where)
        self.name = name
        self.description = need(table, "description", str, where, "")
        self.data = need(table, "data", str, where, required=True)
        # tools/prepare-data.sh's arguments after DATA (MB per domain, vocabulary, sequence length)
        self.prepare = need(table, "prepare", list, where, [])
        seeds = need(table, "seeds", list, where, required=True)
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in seeds):
            raise PlanError(f"{where}: 'seeds' must be a non-empty list of positive integers, got {seeds!r}")
        self.seeds = list(seeds)
        self.overrides = flatten_overrides(need(table, "overrides", dict, where, {}), f"{where}.overrides")
        configs = need(table, "configs", dict, where, {})
        for k, v in configs.items():
            if not isinstance(v, str):
                raise PlanError(f"{where}.configs: '{k}' must map to a config path, got {v!r}")
        self.configs = dict(configs)  # base config -> the config this budget uses instead (e.g. the paper's)
        tasks = need(table, "tasks", dict, where, {})
        check_keys(tasks, TASK_KEYS, f"{where}.tasks")
        for k, v in tasks.items():
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
                raise PlanError(f"{where}.tasks: '{k}' must be a non-negative integer, got {v!r}")
        self.tasks = {"examples": 200, "train_examples": 50, "shots": 3, "seed": 1, **tasks}
        self.final_window = self._window(table, "final_window", [0.8, 1.0], where)
        self.early_window = self._window(table, "early_window", [0.2, 0.4], where)

    @staticmethod
    def _window(table, key, default, where):
        w = need(table, key, list, where, default)
        if len(w) != 2 or not all(isinstance(x, (int, float)) for x in w) or not 0 <= w[0] < w[1] <= 1:
            raise PlanError(f"{where}: '{key}' must be [start, end], fractions of the run with 0 <= start < end <= 1, "
                            f"got {w!r}")
        return [float(w[0]), float(w[1])]


def load_budgets(path=BUDGETS_FILE):
    doc = load_toml(path)
    budgets = {}
    for name, table in doc.items():
        if not isinstance(table, dict):
            raise PlanError(f"{path}: '{name}' must be a table ([{name}])")
        budgets[name] = Budget(name, table, path)
    if not budgets:
        raise PlanError(f"{path}: no budget defined")
    return budgets


# ---- plans --------------------------------------------------------------------

EXPERIMENT_KEYS = {"title", "paper", "summary", "seeds", "same", "notes"}
ARM_KEYS = {"name", "label", "config", "overrides", "instances", "budget", "description"}
ARM_BUDGET_KEYS = {"config", "overrides", "skip"}
EVALUATION_KINDS = {"perplexity", "tasks"}
EVALUATION_KEYS = {"name", "kind", "arms", "routing", "tasks", "shots"}
TASK_KINDS = {"continuation", "domain"}
ANALYSIS_KINDS = {
    "loss_curves": {"arms"},
    "loss_gap": {"pairs"},
    "perplexity": {"arms"},
    "accuracy": {"arms"},
    "utilisation": {"arms"},
    "routing_heatmaps": {"arms"},
    "specialisation": {"arms"},
}
ANALYSIS_KEYS = {"kind", "name", "title", "text", "arms", "pairs", "evaluation", "evaluations", "claim", "layers",
                 "metric"}
CLAIM_KEYS = {"paper", "source", "measure", "a", "b", "arm", "pairs", "domain", "task", "metric", "evaluation",
              "evaluation_b", "layer", "layer_a", "layer_b", "expect", "note"}
# measure -> the keys it needs (besides paper, expect)
MEASURES = {
    "final_loss": {"a", "b"},                  # final training loss, b - a (nats)
    "loss_gap_difference": {"pairs"},          # (b1 - a1) - (b2 - a2) of final training losses
    "loss_gap_growth": {"pairs"},              # that difference late in training minus early
    "ppl_gain": {"a", "b"},                    # 1 - ppl_b / ppl_a, % (lory_eval --compare)
    "ppl_gain_difference": {"pairs"},          # gain of b1 over a1 minus gain of b2 over a2, % points
    "accuracy_diff": {"a", "b"},               # accuracy b - a, points
    "experts_used": {"arm"},                   # fraction of experts used at the end (min over layers)
    "experts_used_diff": {"a", "b"},           # fraction of experts used, mean over layers, b - a
    "specialisation_layers": {"arm", "layer_a", "layer_b"},  # JS(layer_b) - JS(layer_a), bits
    "specialisation_diff": {"a", "b"},         # JS of b - JS of a (mean over layers, or at `layer`), bits
}
EXPECT_RE = re.compile(r"\s*(?:(<=|>=|<|>)\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|within\s+([-+]?\d+(?:\.\d*)?))\s*")
DEFAULT_SAME = ["schedule.tokens", "schedule.steps", "train.global_batch_tokens", "model.max_position_embeddings",
                "model.hidden_size", "model.intermediate_size", "model.num_hidden_layers", "data.valid",
                "eval.tokens_per_domain"]


def parse_expect(text, where):
    """'< 0' -> ('<', 0.0); 'within 2' -> ('within', 2.0)."""
    m = EXPECT_RE.fullmatch(text)
    if not m:
        raise PlanError(f"{where}: 'expect' must be '< X', '> X', '<= X', '>= X' or 'within X', got {text!r}")
    if m.group(3) is not None:
        tolerance = float(m.group(3))
        if tolerance <= 0:
            raise PlanError(f"{where}: 'expect = \"within X\"' needs X > 0, got {text!r}")
        return ("within", tolerance)
    return (m.group(1), float(m.group(2)))


class Arm:
    def __init__(self, table, index, path, budget_names):
        where = f"{path}: [[arm]] #{index + 1}"
        if isinstance(table.get("name"), str):
            where += f" '{table['name']}'"
        check_keys(table, ARM_KEYS, where)
        self.name = need(table, "name", str, where, required=True)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise PlanError(f"{where}: name {self.name!r} must be letters, digits, '.', '_' or '-'")
        where = f"{path}: [[arm]] '{self.name}'"
        self.label = need(table, "label", str, where, self.name)
        self.description = need(table, "description", str, where, "")
        self.config = need(table, "config", str, where, required=True)
        self.overrides = flatten_overrides(need(table, "overrides", dict, where, {}), f"{where}.overrides")
        self.instances = need(table, "instances", str, where, "similarity")
        if self.instances not in ("similarity", "random"):
            raise PlanError(f"{where}: 'instances' must be \"similarity\" or \"random\" "
                            f"(DATA/instances/train-<instances>.bin), got {self.instances!r}")
        self.budget = {}
        for b, sub in need(table, "budget", dict, where, {}).items():
            w = f"{where}.budget.{b}"
            if b not in budget_names:
                raise PlanError(f"{w}: no budget '{b}' (budgets: {', '.join(sorted(budget_names))})")
            if not isinstance(sub, dict):
                raise PlanError(f"{w}: must be a table")
            check_keys(sub, ARM_BUDGET_KEYS, w)
            self.budget[b] = {
                "config": need(sub, "config", str, w),
                "overrides": flatten_overrides(need(sub, "overrides", dict, w, {}), f"{w}.overrides"),
                "skip": need(sub, "skip", bool, w, False),
            }

    def for_budget(self, budget):
        """(config, overrides) of this arm under a budget: the budget's config map, then the arm's own."""
        sub = self.budget.get(budget.name, {})
        config = sub.get("config") or budget.configs.get(self.config, self.config)
        overrides = dict(self.overrides)
        overrides.update(sub.get("overrides", {}))
        return config, overrides

    def skipped(self, budget):
        return self.budget.get(budget.name, {}).get("skip", False)


class Evaluation:
    def __init__(self, table, index, path, arms):
        where = f"{path}: [[evaluation]] #{index + 1}"
        if isinstance(table.get("name"), str):
            where += f" '{table['name']}'"
        check_keys(table, EVALUATION_KEYS, where)
        self.name = need(table, "name", str, where, required=True)
        where = f"{path}: [[evaluation]] '{self.name}'"
        if self.name == "train":
            raise PlanError(f"{where}: 'train' is the built-in evaluation (the eval.json training writes); "
                            f"choose another name")
        self.kind = need(table, "kind", str, where, required=True)
        if self.kind not in EVALUATION_KINDS:
            raise PlanError(f"{where}: 'kind' must be one of {', '.join(sorted(EVALUATION_KINDS))}, got {self.kind!r}")
        self.arms = string_list(table, "arms", where, required=True)
        check_arm_names(self.arms, arms, where, "arms")
        if self.kind == "perplexity":
            self.routing = need(table, "routing", str, where, required=True)
            if self.routing not in ("causal_segment", "prompt", "segment"):
                raise PlanError(f"{where}: 'routing' must be causal_segment, prompt or segment, got {self.routing!r}")
            if "tasks" in table or "shots" in table:
                raise PlanError(f"{where}: 'tasks' and 'shots' belong to kind = \"tasks\"")
            self.tasks, self.shots = [], None
        else:
            self.routing = need(table, "routing", str, where, "prompt")
            if self.routing not in ("prompt", "segment"):
                raise PlanError(f"{where}: tasks are scored with inference routing: 'routing' must be prompt or "
                                f"segment, got {self.routing!r}")
            self.tasks = string_list(table, "tasks", where, ["continuation", "domain"])
            for t in self.tasks:
                if t not in TASK_KINDS:
                    raise PlanError(f"{where}: task {t!r} is not one lory_tasks builds "
                                    f"({', '.join(sorted(TASK_KINDS))})")
            self.shots = need(table, "shots", int, where)  # None: the budget's


def check_arm_names(names, arms, where, key):
    if not names:
        raise PlanError(f"{where}: '{key}' names no arm")
    for n in names:
        if n not in arms:
            raise PlanError(f"{where}: '{key}' names arm '{n}', which the plan does not define "
                            f"(arms: {', '.join(arms)})")


class Claim:
    def __init__(self, table, where, arms, evaluations):
        check_keys(table, CLAIM_KEYS, where)
        self.paper = need(table, "paper", str, where, required=True)
        self.source = need(table, "source", str, where, "")
        self.note = need(table, "note", str, where, "")
        self.measure = need(table, "measure", str, where, required=True)
        if self.measure not in MEASURES:
            raise PlanError(f"{where}: 'measure' must be one of {', '.join(MEASURES)}, got {self.measure!r}")
        for key in MEASURES[self.measure]:
            if key not in table:
                raise PlanError(f"{where}: measure '{self.measure}' needs '{key}'")
        self.expect_text = need(table, "expect", str, where, required=True)
        self.expect = parse_expect(self.expect_text, where)
        self.a = need(table, "a", str, where)
        self.b = need(table, "b", str, where)
        self.arm = need(table, "arm", str, where)
        for key in ("a", "b", "arm"):
            if getattr(self, key) is not None:
                check_arm_names([getattr(self, key)], arms, where, key)
        self.pairs = parse_pairs(table, where, arms) if "pairs" in table else None
        if self.pairs is not None and len(self.pairs) != 2:
            raise PlanError(f"{where}: measure '{self.measure}' compares two pairs: 'pairs' must hold two "
                            f"[reference, model] pairs")
        self.domain = need(table, "domain", str, where, "all")
        self.task = need(table, "task", str, where, "mean")
        self.metric = need(table, "metric", str, where, "acc")
        if self.metric not in ("acc", "acc_norm"):
            raise PlanError(f"{where}: 'metric' must be acc or acc_norm, got {self.metric!r}")
        # a's evaluation, and b's unless evaluation_b names another (one model under two routings)
        self.evaluation = need(table, "evaluation", str, where, "train")
        self.evaluation_b = need(table, "evaluation_b", str, where, self.evaluation)
        for key in ("evaluation", "evaluation_b"):
            e = getattr(self, key)
            if e != "train" and e not in evaluations:
                raise PlanError(f"{where}: '{key}' names '{e}', which the plan does not define "
                                f"(evaluations: train, {', '.join(evaluations)})")
            if self.measure == "accuracy_diff" and (e == "train" or evaluations[e].kind != "tasks"):
                raise PlanError(f"{where}: measure 'accuracy_diff' needs '{key}' naming a kind = \"tasks\" "
                                f"evaluation, got '{e}'")
            if self.measure == "ppl_gain" and e != "train" and evaluations[e].kind != "perplexity":
                raise PlanError(f"{where}: measure 'ppl_gain' needs perplexity evaluations ('train' or "
                                f"kind = \"perplexity\"), got '{e}' in '{key}'")
        if self.measure == "ppl_gain_difference" and self.domain == "each":
            raise PlanError(f"{where}: measure 'ppl_gain_difference' compares one domain (or \"all\"), not \"each\"")
        self.layer = parse_layer(table.get("layer", "mean"), where, "layer")
        self.layer_a = parse_layer(table.get("layer_a", 0), where, "layer_a")
        self.layer_b = parse_layer(table.get("layer_b", "last"), where, "layer_b")


def parse_layer(value, where, key):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if value in ("first", "middle", "last", "mean"):
        return value
    raise PlanError(f"{where}: '{key}' must be a layer index or first, middle, last, mean, got {value!r}")


def parse_pairs(table, where, arms):
    pairs = need(table, "pairs", list, where, required=True)
    out = []
    for p in pairs:
        if not (isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)):
            raise PlanError(f"{where}: 'pairs' must be a list of [reference arm, arm] pairs, got {p!r}")
        check_arm_names(p, arms, where, "pairs")
        out.append((p[0], p[1]))
    if not out:
        raise PlanError(f"{where}: 'pairs' is empty")
    return out


class Analysis:
    def __init__(self, table, index, path, arms, evaluations):
        where = f"{path}: [[analysis]] #{index + 1}"
        if isinstance(table.get("name"), str):
            where += f" '{table['name']}'"
        check_keys(table, ANALYSIS_KEYS, where)
        self.kind = need(table, "kind", str, where, required=True)
        if self.kind not in ANALYSIS_KINDS:
            raise PlanError(f"{where}: 'kind' must be one of {', '.join(ANALYSIS_KINDS)}, got {self.kind!r}")
        self.name = need(table, "name", str, where, f"{self.kind}-{index + 1}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise PlanError(f"{where}: name {self.name!r} must be letters, digits, '.', '_' or '-' (it names files)")
        where = f"{path}: [[analysis]] '{self.name}'"
        for key in ANALYSIS_KINDS[self.kind]:
            if key not in table:
                raise PlanError(f"{where}: kind '{self.kind}' needs '{key}'")
        self.title = need(table, "title", str, where, "")
        self.text = need(table, "text", str, where, "")
        self.arms = string_list(table, "arms", where, [])
        if self.arms:
            check_arm_names(self.arms, arms, where, "arms")
        self.pairs = parse_pairs(table, where, arms) if "pairs" in table else []
        self.evaluation = need(table, "evaluation", str, where, "train")
        self.evaluations = string_list(table, "evaluations", where, [self.evaluation])
        for e in self.evaluations:
            if e != "train" and e not in evaluations:
                raise PlanError(f"{where}: evaluation '{e}' is not defined in the plan "
                                f"(evaluations: train, {', '.join(evaluations)})")
        if self.kind == "accuracy":
            for e in self.evaluations:
                if e == "train" or evaluations[e].kind != "tasks":
                    raise PlanError(f"{where}: kind 'accuracy' needs 'evaluation(s)' naming kind = \"tasks\" "
                                    f"evaluations, got '{e}'")
        if self.kind == "perplexity":
            for e in self.evaluations:
                if e != "train" and evaluations[e].kind != "perplexity":
                    raise PlanError(f"{where}: kind 'perplexity' needs perplexity evaluations, got '{e}' (tasks)")
        self.layers = need(table, "layers", list, where, [])
        if not all(isinstance(l, int) and not isinstance(l, bool) and l >= 0 for l in self.layers):
            raise PlanError(f"{where}: 'layers' must be a list of layer indices, got {self.layers!r}")
        self.metric = need(table, "metric", str, where, "acc")
        if self.metric not in ("acc", "acc_norm"):
            raise PlanError(f"{where}: 'metric' must be acc or acc_norm, got {self.metric!r}")
        claims = need(table, "claim", list, where, [])
        self.claims = [Claim(c, f"{where} [[analysis.claim]] #{i + 1}", arms, evaluations)
                       for i, c in enumerate(claims)]


class Plan:
    def __init__(self, path, budget_names):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        doc = load_toml(path)
        check_keys(doc, {"experiment", "arm", "evaluation", "analysis"}, path)
        exp = need(doc, "experiment", dict, path, required=True)
        where = f"{path}: [experiment]"
        check_keys(exp, EXPERIMENT_KEYS, where)
        self.title = need(exp, "title", str, where, required=True)
        self.paper = need(exp, "paper", str, where, "")
        self.summary = need(exp, "summary", str, where, "")
        self.notes = need(exp, "notes", str, where, "")
        seeds = need(exp, "seeds", dict, where, {})
        for b, n in seeds.items():
            if b not in budget_names:
                raise PlanError(f"{where}.seeds: no budget '{b}' (budgets: {', '.join(sorted(budget_names))})")
            if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
                raise PlanError(f"{where}.seeds: '{b}' must be a positive number of seeds, got {n!r}")
        self.seeds = dict(seeds)  # budget -> number of seeds (default: the budget's)
        self.same = string_list(exp, "same", where, DEFAULT_SAME)
        arm_tables = need(doc, "arm", list, path, required=True)
        self.arms = {}
        for i, t in enumerate(arm_tables):
            if not isinstance(t, dict):
                raise PlanError(f"{path}: 'arm' must be an array of tables ([[arm]])")
            arm = Arm(t, i, path, budget_names)
            if arm.name in self.arms:
                raise PlanError(f"{path}: two arms are named '{arm.name}'")
            self.arms[arm.name] = arm
        self.evaluations = {}
        for i, t in enumerate(need(doc, "evaluation", list, path, [])):
            e = Evaluation(t, i, path, self.arms)
            if e.name in self.evaluations:
                raise PlanError(f"{path}: two evaluations are named '{e.name}'")
            self.evaluations[e.name] = e
        self.analyses = []
        for i, t in enumerate(need(doc, "analysis", list, path, [])):
            a = Analysis(t, i, path, self.arms, self.evaluations)
            if any(x.name == a.name for x in self.analyses):
                raise PlanError(f"{path}: two analyses are named '{a.name}'")
            self.analyses.append(a)
        # Every evaluation a claim or analysis reads must cover the arms it names.
        for a in self.analyses:
            for e in a.evaluations:
                if e != "train":
                    missing = [x for x in a.arms if x not in self.evaluations[e].arms]
                    if missing:
                        raise PlanError(f"{path}: [[analysis]] '{a.name}' reads evaluation '{e}' of arm "
                                        f"'{missing[0]}', which that evaluation does not cover")
            for c in a.claims:
                for e, named in ((c.evaluation, [c.a, c.arm]), (c.evaluation_b, [c.b])):
                    missing = [x for x in named if x and e != "train" and x not in self.evaluations[e].arms]
                    if missing:
                        raise PlanError(f"{path}: a claim of [[analysis]] '{a.name}' reads evaluation "
                                        f"'{e}' of arm '{missing[0]}', which that evaluation does not cover")

    def seeds_for(self, budget, override=None):
        n = override or self.seeds.get(budget.name)
        if n is None:
            return list(budget.seeds)
        return list(range(1, n + 1))


def plan_paths(names=None, directory=PLANS_DIR):
    """The plan files, by name (file stem) or all of them in file-name order."""
    available = sorted(f[:-5] for f in os.listdir(directory) if f.endswith(".toml"))
    if not names:
        return [os.path.join(directory, n + ".toml") for n in available]
    paths = []
    for n in names:
        if n.endswith(".toml") or os.sep in n:
            if not os.path.isfile(n):
                raise PlanError(f"no plan file {n}")
            paths.append(n)
        elif n in available:
            paths.append(os.path.join(directory, n + ".toml"))
        else:
            raise PlanError(f"no plan '{n}' in {directory} (plans: {', '.join(available)})")
    return paths


def load_plans(names, budgets, directory=PLANS_DIR):
    return [Plan(p, set(budgets)) for p in plan_paths(names, directory)]
