#!/usr/bin/env python3
"""run.py: reproduces the Lory paper's analyses at small scale, one TOML plan per experiment.

  python3 tools/experiments/run.py --budget small                  # every plan, CI size (~2-3 min on 2 cores)
  python3 tools/experiments/run.py --budget default --plans dense-vs-lory,ablations
  python3 tools/experiments/run.py --budget default --dry-run      # what would run, and the commands
  python3 tools/experiments/run.py --list

For each plan in tools/experiments/plans/ it trains every arm once per seed with lory_train
(identical runs, e.g. the dense baseline, are trained once for all plans: a run is keyed by its
resolved config), resumes interrupted runs, skips finished ones, runs the extra evaluations
(lory_eval with another routing, lory_tasks + lory_eval --tasks), then writes
OUT/<experiment>/report.md with tables, figures and the paper's claims judged from the numbers,
and OUT/README.md indexing them. tools/experiments/README.md documents the plans and budgets.
Exit status: 0 when everything ran, 1 when some run, evaluation or figure failed (the reports
say which and why), 2 for a bad plan, budget or argument.
"""
import argparse
import os
import shlex
import subprocess
import sys
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import analyses  # noqa: E402
import plans as P  # noqa: E402
import report  # noqa: E402
from runs import EvalFailure, Interrupted, RunSpec, Runner, git_commit, quote  # noqa: E402

DEFAULT_OUT = {"default": "runs/experiments"}  # other budgets: runs/experiments-<budget>


def parse_args(argv):
    p = argparse.ArgumentParser(prog="run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", default="default", help="small (CI), default (the committed reports), large "
                                                       "(the main job's size), paper (GPUs); budgets.toml")
    p.add_argument("--plans", default="", help="comma-separated plan names (default: every plan in plans/)")
    p.add_argument("--out", help="output root (default: runs/experiments, or runs/experiments-<budget>)")
    p.add_argument("--bin", default="build/bin", help="where lory_train, lory_eval, lory_tasks are (default build/bin)")
    p.add_argument("--data", help="data directory made by tools/prepare-data.sh (default: the budget's)")
    p.add_argument("--seeds", type=int, help="seeds per arm (default: the plan's or the budget's)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="a lory_train override for every run (e.g. train.device=cuda); repeatable")
    p.add_argument("--dry-run", action="store_true", help="resolve and check every arm, print what would run; "
                                                          "train nothing")
    p.add_argument("--report-only", action="store_true", help="train and evaluate nothing; write the reports "
                                                              "from what exists")
    p.add_argument("--no-figures", action="store_true", help="skip the figures (no matplotlib needed)")
    p.add_argument("--python", help="a python3 with matplotlib for the figures (default: this one, python3, "
                                    "/usr/bin/python3)")
    p.add_argument("--verbose", action="store_true", help="show the tools' output as they run")
    p.add_argument("--list", action="store_true", help="list the plans and budgets, and exit")
    args = p.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        p.error("--seeds must be at least 1")
    return args


def repo_path(path):
    """A user path (relative to where they ran us) as seen from the repository root."""
    absolute = os.path.abspath(path)
    rel = os.path.relpath(absolute, ROOT)
    return absolute if rel.startswith("..") else rel


def find_python(explicit):
    candidates = [explicit] if explicit else [sys.executable, "python3", "/usr/bin/python3"]
    for c in candidates:
        try:
            if subprocess.run([c, "-c", "import matplotlib"], capture_output=True).returncode == 0:
                return c
        except OSError:
            continue
    return None


def parse_set(items):
    out = []
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or key.count(".") != 1:
            raise P.PlanError(f"--set {item!r}: expected SECTION.KEY=VALUE (lory_train --help-config lists the keys)")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        out.append((key, value))
    return out


def main(argv=None):
    start = time.monotonic()
    raw = sys.argv[1:] if argv is None else argv
    args = parse_args(raw)
    out_arg = repo_path(args.out) if args.out else None
    data_arg = repo_path(args.data) if args.data else None
    bin_dir = repo_path(args.bin)
    os.chdir(ROOT)
    invocation = "python3 tools/experiments/run.py " + " ".join(shlex.quote(a) for a in raw)
    # The commit the runs record: the tree's as the runner starts (edits made while it runs are not
    # in its binaries). That build/bin was built from it is the user's to ensure: nothing checks it.
    git_commit()
    try:
        budgets = P.load_budgets()
        if args.list:
            for plan in P.load_plans(None, budgets):
                print(f"{plan.name:32s} {plan.title}  [{plan.paper}]")
            print()
            for b in budgets.values():
                print(f"--budget {b.name:8s} {b.description.strip()}")
            return 0
        if args.budget not in budgets:
            raise P.PlanError(f"--budget {args.budget!r}: no such budget in {P.BUDGETS_FILE} "
                              f"(budgets: {', '.join(budgets)})")
        budget = budgets[args.budget]
        plan_list = P.load_plans([n for n in args.plans.split(",") if n.strip()], budgets)
        extra = parse_set(args.set)
    except P.PlanError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    data = data_arg or budget.data
    out = out_arg or DEFAULT_OUT.get(budget.name, f"runs/experiments-{budget.name}")
    log = print
    python = None
    if not (args.no_figures or args.dry_run):
        python = find_python(args.python)
        if python is None:
            print("run.py: no python3 with matplotlib for the figures: 'apt-get install python3-matplotlib' "
                  "(or 'bash tools/install-deps.sh'), --python PY, or --no-figures", file=sys.stderr)
            return 2
    if not os.path.isfile(os.path.join(data, "instances", "train-similarity.bin")) and not (args.dry_run or args.report_only):
        if not budget.prepare:
            print(f"run.py: no data in {data} (instances/train-similarity.bin): make it with tools/prepare-data.sh",
                  file=sys.stderr)
            return 2
        cmd = ["bash", "tools/prepare-data.sh", data] + [str(x) for x in budget.prepare]
        log(f"== data: {quote(cmd)}")
        if subprocess.run(cmd).returncode != 0:
            print(f"run.py: {quote(cmd)} failed", file=sys.stderr)
            return 1
    runner = Runner(bin_dir, out, data, dry_run=args.dry_run, verbose=args.verbose, log=log)
    log(f"== budget {budget.name}: data {data}, output {out}, plans: {', '.join(p.name for p in plan_list)}")

    # ---- resolve every arm of every plan to a run (shared when identical) ----
    failures = {p.name: [] for p in plan_list}
    plan_runs = {}   # plan -> {(arm, seed): RunSpec}
    plan_seeds = {}
    cache = {}
    try:
        for plan in plan_list:
            seeds = plan.seeds_for(budget, args.seeds)
            plan_seeds[plan.name] = seeds
            plan_runs[plan.name] = {}
            for arm in plan.arms.values():
                if arm.skipped(budget):
                    continue
                config, arm_overrides = arm.for_budget(budget)
                if not os.path.isfile(config):
                    raise P.PlanError(f"{plan.path}: arm '{arm.name}': config {config} does not exist")
                overrides = list(budget.overrides.items())
                overrides += [("data.train", os.path.join(data, "instances", f"train-{arm.instances}.bin")),
                              ("data.valid", os.path.join(data, "shards", "valid-*.bin"))]
                overrides += list(arm_overrides.items()) + extra
                merged = {}
                for k, v in overrides:  # one flag per key: the last value given, at the first key's place
                    merged[k] = v
                overrides = list(merged.items())
                for seed in seeds:
                    ident = (config, tuple((k, repr(v)) for k, v in overrides), seed)
                    if ident not in cache:
                        cache[ident] = runner.resolve(RunSpec(config, overrides, seed))
                    spec = cache[ident]
                    if spec.error:
                        msg = (f"arm '{arm.name}' (seed {seed}) cannot run: lory_train refuses its config "
                               f"({config} + overrides):\n{spec.error}")
                        if msg not in failures[plan.name]:
                            failures[plan.name].append(msg)
                            log(f"!! {plan.name}: {msg}")
                        plan_runs[plan.name][(arm.name, seed)] = spec
                        continue
                    plan_runs[plan.name][(arm.name, seed)] = runner.intern(spec, plan.name, arm.name)
            check_same(plan, plan_runs[plan.name])
    except P.PlanError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2

    # ---- train, seed by seed (an interrupted invocation leaves whole seeds) ----
    order = []
    all_seeds = sorted({s for seeds in plan_seeds.values() for s in seeds})
    for seed in all_seeds:
        for plan in plan_list:
            for (arm, s), spec in plan_runs[plan.name].items():
                if s == seed and spec.key and spec not in order:
                    order.append(spec)
    todo = [s for s in order if s.state != "done"]
    log(f"== {len(order)} distinct training runs ({len(order) - len(todo)} done already, {len(todo)} to train "
        f"or resume); {sum(len(r) for r in plan_runs.values())} (arm, seed) slots across the plans")
    try:
        if not args.report_only:
            for i, spec in enumerate(order, 1):
                if not runner.train(spec, i, len(order)):
                    if spec.error:
                        for plan in plan_list:
                            arms = sorted({a for (a, _), sp in plan_runs[plan.name].items() if sp is spec})
                            if arms:
                                failures[plan.name].append(f"run {spec.dir} (arm {', '.join(arms)}, seed {spec.seed}) "
                                                           f"failed:\n{spec.error}")
        else:
            for spec in order:
                spec.state = runner.state_of(spec.dir)
        if args.dry_run:
            log("\n== dry run: nothing trained; the evaluations would be:")
        if args.report_only:
            runner.dry_run = True  # read what exists, run nothing
        evals = run_evaluations(plan_list, plan_runs, plan_seeds, budget, runner, failures)
        runner.dry_run = args.dry_run
        if args.dry_run:
            for c in dict.fromkeys(runner.commands):
                if "lory_train" not in c:
                    log("    " + c)
            return 0
    except Interrupted as e:
        log(f"\n== interrupted: {e}")
        return 130
    except KeyboardInterrupt:
        log("\n== interrupted; run the same command again to resume")
        return 130

    # ---- analyses, figures, reports ----
    entries = []
    any_failure = any(failures.values())
    for plan in plan_list:
        out_dir = os.path.join(out, plan.name)
        os.makedirs(out_dir, exist_ok=True)
        ctx = analyses.Context(plan, budget, plan_seeds[plan.name], plan_runs[plan.name], evals, runner, out_dir,
                               python or "python3", failures[plan.name])
        sections = [analyses.run_analysis(ctx, a) for a in plan.analyses]
        if ctx.figure_jobs and python:
            import json
            jobs_path = os.path.join(out_dir, "figures.json")
            with open(jobs_path, "w", encoding="utf-8") as f:
                json.dump(ctx.figure_jobs, f, indent=1)
            p = subprocess.run([python, os.path.join("tools", "experiments", "figures.py"), jobs_path],
                               capture_output=True, text=True)
            if p.returncode != 0:
                ctx.failures.append(f"some figures were not drawn ({python} tools/experiments/figures.py "
                                    f"{jobs_path}):\n{p.stderr.strip()}")
        elif ctx.figure_jobs:
            ctx.failures.append("figures skipped (--no-figures)")
        commands = plan_commands(plan, plan_runs[plan.name], runner, sections)
        report.write_experiment(os.path.join(out_dir, "report.md"), plan, budget, plan_seeds[plan.name], sections,
                                ctx.failures, arms_rows(plan, plan_runs[plan.name], budget, plan_seeds[plan.name]),
                                commands, invocation, out_dir, trained_at(runner, plan_runs[plan.name].values()))
        claims = [c for s in sections for c in s.claims]
        counts = {k: sum(c.verdict.status == k for c in claims) for k in report.BADGE}
        entries.append({"name": plan.name, "title": plan.title, "paper": plan.paper, "counts": counts,
                        "failures": len(ctx.failures),
                        "claims": [{"paper": c.claim.paper, "source": c.claim.source, "measure": c.claim.measure,
                                    "expect": c.claim.expect_text, "ours": c.ours, "value": c.estimate.value
                                    if c.estimate is not None else None, "verdict": c.verdict.status,
                                    "reason": c.verdict.reason, "point": c.verdict.point} for c in claims]})
        any_failure = any_failure or bool(ctx.failures)
        log(f"== {plan.name}: {counts['agrees']} agree, {counts['disagrees']} disagree, {counts['inconclusive']} "
            f"inconclusive, {counts['not measured']} not measured -> {out_dir}/report.md"
            + (f" ({len(ctx.failures)} problem{'s' * (len(ctx.failures) != 1)} listed there)" if ctx.failures else ""))
    seconds = time.monotonic() - start
    trained = sum(1 for s in order if s.seconds)
    train_minutes = sum(runner.read_meta(s).get("train_seconds") or 0 for s in order) / 60
    report.write_index(os.path.join(out, "README.md"), budget, entries, invocation, seconds,
                       f"{len(order)} distinct runs, {trained} trained by it, {train_minutes:.1f} min of training in "
                       f"all, at commit {trained_at(runner, order)}")
    report.write_summary(os.path.join(out, "summary.json"), budget, entries)
    log(f"== done in {seconds / 60:.1f} min: {out}/README.md")
    return 1 if any_failure else 0


def check_same(plan, runs):
    """'Same data and tokens across arms': the plan's `same` keys must resolve alike in every arm."""
    seen = {}
    for (arm, seed), spec in runs.items():
        if not spec.resolved:
            continue
        flat = spec.flat()
        for key in plan.same:
            value = flat.get(key)
            if key in seen and seen[key][1] != value:
                raise P.PlanError(f"{plan.path}: arms '{seen[key][0]}' and '{arm}' differ in {key} "
                                  f"({seen[key][1]!r} vs {value!r}), which [experiment] same = [...] says every arm "
                                  f"shares (same tokens, same model size); fix the overrides or the 'same' list")
            seen.setdefault(key, (arm, value))


def run_evaluations(plan_list, plan_runs, plan_seeds, budget, runner, failures):
    """Every [[evaluation]] of every plan on every finished run: {(evaluation, arm, seed): path}
    (None where it could not run; with runner.dry_run, only what exists already)."""
    evals = {}
    task_cache = {}
    for plan in plan_list:
        for ev in plan.evaluations.values():
            for arm in ev.arms:
                for seed in plan_seeds[plan.name]:
                    spec = plan_runs[plan.name].get((arm, seed))
                    if spec is None or not spec.key:
                        continue
                    try:
                        if ev.kind == "perplexity":
                            path = runner.perplexity(spec, ev.routing)
                        else:
                            settings = dict(budget.tasks)
                            shots = ev.shots if ev.shots is not None else settings["shots"]
                            ident = (tuple(ev.tasks), tuple(sorted(settings.items())))
                            if ident not in task_cache:
                                task_cache[ident] = runner.task_files(ev.tasks, settings)
                            files, tag = task_cache[ident]
                            path = runner.tasks(spec, files, ev.routing, shots, settings.get("seed", 1),
                                                settings.get("max_examples", 0), tag)
                        evals[(ev.name, arm, seed)] = path
                    except EvalFailure as e:
                        msg = f"evaluation '{ev.name}' of arm '{arm}' (seed {seed}) failed: {e}"
                        failures[plan.name].append(msg)
                        runner.log(f"!! {plan.name}: {msg}")
    return evals


def plan_commands(plan, runs, runner, sections):
    specs = list(dict.fromkeys(s for s in runs.values() if s.key))
    cmds = ["# training (one run per arm and seed; a run shared with other experiments is trained once)"]
    for s in specs:
        cmds.append(quote(runner.train_command(s)).replace(" --resume", ""))
    dirs = [s.dir for s in specs]
    evals = [c for c in dict.fromkeys(runner.commands) if "lory_train" not in c and
             (any(d in c for d in dirs) or "lory_tasks" in c or c.startswith("cat "))]
    if evals:
        cmds += ["", "# evaluations beyond the eval.json each training run writes"] + evals
    figs = [cmd for s in sections for _, _, cmd in s.figures]
    if figs:
        cmds += ["", "# figures (figures.json holds the numbers of the figures drawn by figures.py itself)"] + figs
    return cmds


def trained_at(runner, specs):
    """The commits the finished runs among specs were trained at (run.json's engine_commit), joined."""
    commits = sorted({c for s in specs if s is not None and s.key and s.state == "done"
                      for c in runner.trained_at(s) or ["unknown"]})
    return ", ".join(commits) or "none"


def arms_rows(plan, runs, budget, seeds):
    rows = []
    for arm in plan.arms.values():
        if arm.skipped(budget):
            rows.append([arm.name, "", "", "", f"skipped at budget {budget.name}", ""])
            continue
        config, overrides = arm.for_budget(budget)
        ov = " ".join(f"--{k}={P.override_text(v)}" for k, v in overrides.items())
        if arm.instances != "similarity":
            ov = (ov + f" (instances: train-{arm.instances}.bin)").strip()
        specs = [runs.get((arm.name, s)) for s in seeds]
        done = sum(1 for s in specs if s is not None and s.state == "done")
        dirs = ", ".join(sorted({os.path.basename(s.dir) for s in specs if s is not None and s.dir}))
        model = ""
        for s in specs:
            if s is not None and s.state == "done":
                model = analyses.model_text_of(s)
                break
        rows.append([arm.name + (f" ({arm.description})" if arm.description else ""), f"`{config}`",
                     f"`{ov}`" if ov else "", model, f"{done}/{len(seeds)}", dirs])
    return rows


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FileNotFoundError as e:
        print(f"run.py: {e}", file=sys.stderr)
        sys.exit(2)
