"""Numbers with uncertainties, and whether they agree with a claim.

Every claim a plan checks is one number (a loss difference, a perplexity
gain, an accuracy difference, a count) with a 95% interval, or, where only
one value per training seed exists, the range over the seeds. A claim is
"expect = '< 0'" (or '> X', '<= X', '>= X', 'within X': |value| <= X), and
the verdict is:
  agrees        the whole interval satisfies the claim
  disagrees     the whole interval contradicts it
  inconclusive  the interval straddles the boundary (within the uncertainty)
With one seed and no other source of uncertainty the interval is the point
itself, and the verdict says so. Pure standard library (no numpy), so the
runner and its tests need no matplotlib.
"""
import math
import random
import statistics

REPLICATES = 2000
BOOTSTRAP_SEED = 20240503  # fixed: the same numbers give the same interval on every run


class Estimate:
    """A value with its 95% interval [lo, hi] (None: no interval) and how the interval was made."""

    def __init__(self, value, lo=None, hi=None, how="", n_seeds=0, per_seed=None):
        self.value, self.lo, self.hi, self.how = value, lo, hi, how
        self.n_seeds = n_seeds
        self.per_seed = per_seed or []

    def bounds(self):
        if self.lo is None or self.hi is None:
            return self.value, self.value
        return self.lo, self.hi

    def measured(self):
        return self.value is not None and math.isfinite(self.value)


class Verdict:
    def __init__(self, status, reason, point=False):
        self.status, self.reason = status, reason  # agrees | disagrees | inconclusive | not measured
        self.point = point  # judged on a single value (one seed, no interval)

    def __repr__(self):
        return f"Verdict({self.status!r}, {self.reason!r})"


def judge(expect, est, fmt=None):
    """The verdict of an Estimate against an expectation ('<', x) ... ('within', t); fmt writes a
    number for the reason (default: 4 significant digits)."""
    fmt = fmt or fmt_num
    if est is None or not est.measured():
        return Verdict("not measured", "the runs or evaluations it needs are missing")
    op, x = expect
    lo, hi = est.bounds()
    point = est.lo is None or est.hi is None
    if op == "within":
        ok, bad = -x <= lo and hi <= x, lo > x or hi < -x
        want = f"within ±{x:g}"
    elif op == "<":
        ok, bad, want = hi < x, lo >= x, f"< {x:g}"
    elif op == "<=":
        ok, bad, want = hi <= x, lo > x, f"<= {x:g}"
    elif op == ">":
        ok, bad, want = lo > x, hi <= x, f"> {x:g}"
    elif op == ">=":
        ok, bad, want = lo >= x, hi < x, f">= {x:g}"
    else:
        raise ValueError(f"unknown comparison {op!r}")
    if point:
        where = f"the value {fmt(est.value)}"
        caveat = " (one seed, no interval: a point, not evidence beyond the uncertainty)"
    else:
        where = f"the interval [{fmt(lo)}, {fmt(hi)}]"
        caveat = ""
    if ok:
        return Verdict("agrees", f"{where} is {want}{caveat}", point)
    if bad:
        return Verdict("disagrees", f"{where} contradicts {want}{caveat}", point)
    boundary = "the tolerance" if op == "within" else f"{x:g}"
    return Verdict("inconclusive", f"{where} straddles {boundary}: within the uncertainty", point)


def fmt_num(x, digits=4):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{x:.{min(decimals, 6)}f}"


def mean_sd(values):
    """(mean, sample standard deviation or None for one value)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def fmt_mean_sd(values, decimals=4):
    """'6.2190 ± 0.0123' over seeds; one value alone; 'n/a' for none."""
    m, sd = mean_sd(values)
    if not math.isfinite(m):
        return "n/a"
    text = f"{m:.{decimals}f}"
    return text if sd is None else f"{text} ± {sd:.{decimals}f}"


def percentile(sorted_values, q):
    """Linear-interpolated quantile q in [0, 1] of sorted values."""
    if not sorted_values:
        return math.nan
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def block_mean(series, block, rng):
    """The mean of a moving-block bootstrap resample of series (blocks of consecutive values:
    successive training steps are correlated)."""
    n = len(series)
    if n == 0:
        return math.nan
    b = max(1, min(block, n))
    starts = n - b + 1
    total, count = 0.0, 0
    while count < n:
        s = rng.randrange(starts)
        for v in series[s:s + b]:
            if count == n:
                break
            total += v
            count += 1
    return total / n


def bootstrap_seeds_and_steps(per_seed, block=3, replicates=REPLICATES):
    """per_seed: for each training seed, a list of (series, weight) components; the statistic of a
    seed is sum(weight * mean(series)), the estimate the mean over seeds. The 95% interval
    resamples the seeds (with replacement; every arm of a seed is resampled together) and, within
    each drawn seed, the steps of every series in blocks: run-to-run noise and the noise of the
    training loss both enter. With one seed only the steps are resampled."""
    per_seed = [comps for comps in per_seed if comps and all(len(s) for s, _ in comps)]
    if not per_seed:
        return Estimate(math.nan)
    values = [sum(w * statistics.fmean(s) for s, w in comps) for comps in per_seed]
    estimate = statistics.fmean(values)
    rng = random.Random(BOOTSTRAP_SEED)
    reps = []
    k = len(per_seed)
    for _ in range(replicates):
        total = 0.0
        for _ in range(k):
            comps = per_seed[rng.randrange(k)]
            total += sum(w * block_mean(s, block, rng) for s, w in comps)
        reps.append(total / k)
    reps.sort()
    how = (f"95% bootstrap interval over {k} seed{'s' * (k != 1)} and over blocks of {block} logged steps "
           f"of the window")
    return Estimate(estimate, percentile(reps, 0.025), percentile(reps, 0.975), how, k, values)


def seed_range(values, what="value"):
    """An estimate whose interval is the range over the seeds (the claim must hold on every seed
    to agree, fail on every seed to disagree)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return Estimate(math.nan)
    how = f"range of the {what} over {len(values)} seed{'s' * (len(values) != 1)}" if len(values) > 1 else \
        f"one seed: no interval"
    if len(values) == 1:
        return Estimate(values[0], None, None, how, 1, values)
    return Estimate(statistics.fmean(values), min(values), max(values), how, len(values), values)


def accuracy_difference(pairs, z=1.96, scale=1.0):
    """pairs: per seed, ((acc_a, se_a, correct_a), (acc_b, se_b, correct_b)); correct_* a list of
    0/1 per test example or None. With the per-example results of both models on every seed, a
    paired bootstrap over examples and seeds; otherwise a normal interval whose variance is the
    binomial variance of both accuracies (mean over seeds; not divided by the seeds, which score
    the same examples) plus the seeds' variance of the difference over their number. Unpaired, so
    wider than a paired interval would be."""
    pairs = [p for p in pairs if p[0][0] is not None and p[1][0] is not None]
    if not pairs:
        return Estimate(math.nan)
    est = _accuracy_difference(pairs, z)
    est.value, est.per_seed = est.value * scale, [d * scale for d in est.per_seed]
    if est.lo is not None:
        est.lo, est.hi = est.lo * scale, est.hi * scale
    return est


def _accuracy_difference(pairs, z):
    diffs = [b[0] - a[0] for a, b in pairs]
    value = statistics.fmean(diffs)
    k = len(pairs)
    if all(a[2] is not None and b[2] is not None and len(a[2]) == len(b[2]) and a[2] for a, b in pairs):
        rng = random.Random(BOOTSTRAP_SEED)
        reps = []
        for _ in range(REPLICATES):
            total = 0.0
            for _ in range(k):
                a, b = pairs[rng.randrange(k)]
                n = len(a[2])
                idx = [rng.randrange(n) for _ in range(n)]
                total += sum(b[2][i] - a[2][i] for i in idx) / n
            reps.append(total / k)
        reps.sort()
        return Estimate(value, percentile(reps, 0.025), percentile(reps, 0.975),
                        f"95% paired bootstrap over test examples and {k} seed{'s' * (k != 1)}", k, diffs)
    binomial = statistics.fmean(a[1] ** 2 + b[1] ** 2 for a, b in pairs)
    seeds = statistics.variance(diffs) / k if k > 1 else 0.0
    se = math.sqrt(binomial + seeds)
    return Estimate(value, value - z * se, value + z * se,
                    f"95% normal interval, unpaired: binomial standard errors of both models"
                    f"{' and the variance over ' + str(k) + ' seeds' if k > 1 else ' (one seed)'}", k, diffs)
