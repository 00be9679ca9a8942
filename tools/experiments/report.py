"""Markdown reports: one per experiment (OUT/<experiment>/report.md, figures next to it) and an
index (OUT/README.md), plus OUT/summary.json with every verdict for scripts."""
import json
import os
import time

import stats as S

BADGE = {"agrees": "agrees", "disagrees": "**DISAGREES**", "inconclusive": "inconclusive",
         "not measured": "not measured"}


def badge(verdict):
    return BADGE[verdict.status] + (" (one seed, no interval)" if verdict.point else "")

VERDICT_RULES = (
    "How a verdict is reached: each claim is one number computed from the runs, with a 95% interval "
    "(its source is given with the claim). *agrees*: the whole interval satisfies the claim; "
    "**DISAGREES**: the whole interval contradicts it; *inconclusive*: the interval straddles the "
    "boundary, so at this scale and this many seeds the data cannot tell; *not measured*: a run or "
    "evaluation it needs failed or was not run (see Problems). Where only one value per seed exists "
    "(expert counts, specialisation), the interval is the range over the seeds: the claim must hold "
    "on every seed to agree. Thresholds other than 0 are ours, stated with the claim.")


def md_escape(text):
    return text.replace("|", "\\|").replace("\n", " ")


def write_experiment(path, plan, budget, seeds, sections, failures, arms_rows, commands, invocation, out_dir,
                     trained_at="unknown"):
    claims = [c for s in sections for c in s.claims]
    lines = [f"# {plan.title}", ""]
    if plan.paper:
        lines += [f"Paper: {plan.paper}. Plan: `tools/experiments/plans/{plan.name}.toml`.", ""]
    from runs import git_commit
    lines += [f"**Budget `{budget.name}`**: {budget.description.strip()} Data `{budget_data(budget, out_dir)}`; "
              f"{len(seeds)} seed{'s' * (len(seeds) != 1)} per arm ({', '.join(map(str, seeds))}). "
              f"Written {time.strftime('%Y-%m-%d %H:%M')} at commit {git_commit() or 'unknown'}, from runs trained "
              f"at commit {trained_at}.", ""]
    if plan.summary:
        lines += [plan.summary.strip(), ""]
    if claims:
        lines += ["## Claims and verdicts", "",
                  "| # | the paper's claim | measured as | ours | verdict |", "|---|---|---|---|---|"]
        for i, c in enumerate(claims, 1):
            src = f" ({c.claim.source})" if c.claim.source else ""
            lines.append(f"| {i} | {md_escape(c.claim.paper)}{src} | {md_escape(expect_text(c))} | "
                         f"{md_escape(c.ours)} | {badge(c.verdict)} |")
        counts = {k: sum(c.verdict.status == k for c in claims) for k in BADGE}
        lines += ["", f"{counts['agrees']} agree, {counts['disagrees']} disagree, {counts['inconclusive']} "
                      f"inconclusive, {counts['not measured']} not measured. {VERDICT_RULES}", ""]
    lines += ["## Arms", ""]
    lines += ["| arm | base config | overrides (besides the budget's) | model | runs done | run directories |",
              "|---|---|---|---|---|---|"]
    for r in arms_rows:
        lines.append("| " + " | ".join(md_escape(str(x)) for x in r) + " |")
    lines += ["", f"Every arm also gets the budget's overrides: "
                  f"`{' '.join(f'--{k}={v}' for k, v in budget.overrides.items()) or '(none)'}`, the data "
                  f"(`DATA/instances/train-<instances>.bin`, `DATA/shards/valid-*.bin`) and `--train.seed`. Runs "
                  f"are shared between experiments when their resolved configs are identical.", ""]
    if plan.notes:
        lines += [plan.notes.strip(), ""]
    n = 0
    for s in sections:
        a = s.analysis
        lines += [f"## {a.title or a.name}", ""]
        lines += s.lines
        for name, caption, _ in s.figures:
            if os.path.isfile(os.path.join(out_dir, name)):
                lines += [f"![{caption}]({name})", ""]
            else:
                lines += [f"*Figure `{name}` ({caption}) was not drawn: see Problems.*", ""]
        for c in s.claims:
            n = claims.index(c) + 1
            lines += [f"**Claim {n}** ({c.claim.source or plan.paper}): {c.claim.paper}", "",
                      f"- measured as: {expect_text(c)}",
                      f"- ours: {c.ours}",
                      f"- verdict: {badge(c.verdict)}: {c.verdict.reason}"]
            lines += [f"- {d}" for d in c.details]
            if c.claim.note:
                lines.append(f"- note: {c.claim.note.strip()}")
            lines.append("")
    if failures:
        lines += ["## Problems", "", "Reported as they happened; the sections above mark what they left out.", ""]
        for f in failures:
            body = f.strip().splitlines()
            lines.append(f"- {body[0]}")
            if len(body) > 1:
                lines += ["", "  ```"] + [f"  {x}" for x in body[1:40]] + ["  ```", ""]
        lines.append("")
    lines += ["## How this report was made", "", "```", invocation, "```", "",
              "<details><summary>Every command behind it (training, evaluation, tables, figures)</summary>", "",
              "```"] + commands + ["```", "", "</details>", ""]
    write_text(path, "\n".join(lines))


def budget_data(budget, out_dir):
    return budget.data


def expect_text(c):
    op, x = c.claim.expect
    what = {
        "final_loss": f"final training loss {c.claim.b} - {c.claim.a}",
        "loss_gap_difference": "difference of the two training-loss gaps",
        "loss_gap_growth": "growth of that difference from early to late training",
        "ppl_gain": f"perplexity gain of {c.claim.b} over {c.claim.a} ({c.claim.domain})",
        "ppl_gain_difference": (f"perplexity gain of {c.claim.pairs[0][1]} over {c.claim.pairs[0][0]} minus that "
                                f"of {c.claim.pairs[1][1]} over {c.claim.pairs[1][0]} ({c.claim.domain})"
                                if c.claim.pairs else ""),
        "accuracy_diff": f"accuracy {c.claim.b} - {c.claim.a} ({c.claim.task})",
        "experts_used": f"fraction of experts used by {c.claim.arm}, fewest over layers",
        "experts_used_diff": f"fraction of experts used, {c.claim.b} - {c.claim.a}",
        "specialisation_layers": f"specialisation of {c.claim.arm}, layer {c.claim.layer_b} - layer {c.claim.layer_a}",
        "specialisation_diff": f"specialisation {c.claim.b} - {c.claim.a}",
    }[c.claim.measure]
    cond = f"within ±{x:g}" if op == "within" else f"{op} {x:g}"
    return f"{what} {cond}"


def write_index(path, budget, entries, invocation, total_seconds, runs_summary):
    lines = ["# Lory experiments at small scale", "",
             f"Budget `{budget.name}`: {budget.description.strip()} Made by `{invocation}` "
             f"({time.strftime('%Y-%m-%d %H:%M')}; this invocation took {total_seconds / 60:.1f} minutes; "
             f"{runs_summary}).", "",
             "| experiment | paper | agrees | disagrees | inconclusive | not measured | report |",
             "|---|---|---|---|---|---|---|"]
    for e in entries:
        c = e["counts"]
        lines.append(f"| {md_escape(e['title'])} | {md_escape(e['paper'])} | {c['agrees']} | {c['disagrees']} | "
                     f"{c['inconclusive']} | {c['not measured']} | [{e['name']}/report.md]({e['name']}/report.md) |")
    lines += ["", VERDICT_RULES, ""]
    for e in entries:
        if e["claims"]:
            lines += [f"## {e['title']}", ""]
            for c in e["claims"]:
                lines.append(f"- {BADGE[c['verdict']]}{' (one seed, no interval)' if c['point'] else ''}: "
                             f"{c['paper']} Ours: {c['ours']}.")
            lines.append("")
    write_text(path, "\n".join(lines))


def write_summary(path, budget, entries):
    write_text(path, json.dumps({"budget": budget.name, "experiments": entries}, indent=1) + "\n")


def write_text(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
