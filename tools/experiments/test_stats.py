"""Tests of the agreement check and the numbers under it: verdicts from intervals, the bootstrap,
accuracy differences, and the readers of metrics.jsonl and lory_eval --compare. No training.
Run: python3 -m unittest discover -s tools/experiments -p 'test_*.py'"""
import json
import os
import tempfile
import unittest

import metrics as M
import stats as S


def est(value, lo=None, hi=None, n=2):
    return S.Estimate(value, lo, hi, "test", n)


class TestVerdicts(unittest.TestCase):
    def test_less_than(self):
        self.assertEqual(S.judge(("<", 0), est(-1, -2, -0.5)).status, "agrees")
        self.assertEqual(S.judge(("<", 0), est(1, 0.5, 2)).status, "disagrees")
        self.assertEqual(S.judge(("<", 0), est(-1, -2, 0.5)).status, "inconclusive")

    def test_greater_than_a_threshold(self):
        self.assertEqual(S.judge((">=", 0.5), est(0.7, 0.5, 0.9)).status, "agrees")
        self.assertEqual(S.judge((">", 0.5), est(0.7, 0.5, 0.9)).status, "inconclusive")
        self.assertEqual(S.judge((">=", 0.5), est(0.2, 0.1, 0.3)).status, "disagrees")

    def test_within_a_tolerance(self):
        self.assertEqual(S.judge(("within", 3), est(0.5, -2, 2.5)).status, "agrees")
        self.assertEqual(S.judge(("within", 3), est(0, -14, 14)).status, "inconclusive")
        self.assertEqual(S.judge(("within", 3), est(5, 4, 6)).status, "disagrees")
        self.assertEqual(S.judge(("within", 3), est(-5, -6, -4)).status, "disagrees")

    def test_a_single_value_is_judged_but_marked(self):
        v = S.judge(("<", 0), est(-1, n=1))
        self.assertEqual(v.status, "agrees")
        self.assertTrue(v.point)
        self.assertIn("no interval", v.reason)
        self.assertFalse(S.judge(("<", 0), est(-1, -2, -0.5)).point)

    def test_missing_numbers_are_not_measured(self):
        self.assertEqual(S.judge(("<", 0), None).status, "not measured")
        self.assertEqual(S.judge(("<", 0), S.Estimate(float("nan"))).status, "not measured")

    def test_reason_uses_the_given_formatter(self):
        v = S.judge(("<", 0), est(-1, -2, -0.5), fmt=lambda x: f"<{x}>")
        self.assertIn("<-2>", v.reason)


class TestBootstrap(unittest.TestCase):
    def test_interval_holds_the_estimate_and_is_deterministic(self):
        per_seed = [[([-0.10, -0.12, -0.08, -0.11, -0.09, -0.10], 1)], [([-0.05, -0.07, -0.06, -0.04], 1)]]
        a = S.bootstrap_seeds_and_steps(per_seed)
        b = S.bootstrap_seeds_and_steps(per_seed)
        self.assertAlmostEqual(a.value, (-0.10 + -0.055) / 2)
        self.assertLess(a.lo, a.value)
        self.assertLess(a.value, a.hi)
        self.assertEqual((a.lo, a.hi), (b.lo, b.hi))
        self.assertEqual(a.n_seeds, 2)
        # both seeds negative, so the whole interval is
        self.assertLess(a.hi, 0)

    def test_seeds_that_disagree_widen_it_across_zero(self):
        e = S.bootstrap_seeds_and_steps([[([0.1] * 8, 1)], [([-0.1] * 8, 1)]])
        self.assertAlmostEqual(e.value, 0.0)
        self.assertLess(e.lo, 0)
        self.assertGreater(e.hi, 0)

    def test_weighted_components(self):
        e = S.bootstrap_seeds_and_steps([[([1.0, 1.0], 1), ([0.25, 0.25], -1)]])
        self.assertAlmostEqual(e.value, 0.75)
        self.assertAlmostEqual(e.lo, 0.75)
        self.assertAlmostEqual(e.hi, 0.75)

    def test_empty(self):
        self.assertFalse(S.bootstrap_seeds_and_steps([]).measured())
        self.assertFalse(S.bootstrap_seeds_and_steps([[([], 1)]]).measured())

    def test_seed_range(self):
        r = S.seed_range([0.2, 0.5, 0.3])
        self.assertAlmostEqual(r.value, 1 / 3)
        self.assertEqual((r.lo, r.hi), (0.2, 0.5))
        one = S.seed_range([0.2])
        self.assertIsNone(one.lo)
        self.assertEqual(one.n_seeds, 1)


class TestAccuracy(unittest.TestCase):
    def test_unpaired_interval_from_binomial_errors(self):
        e = S.accuracy_difference([((0.30, 0.03, None), (0.40, 0.04, None))], scale=100)
        self.assertAlmostEqual(e.value, 10.0)
        self.assertAlmostEqual(e.hi - e.value, 1.96 * 5.0)

    def test_seed_variance_adds(self):
        e1 = S.accuracy_difference([((0.3, 0.03, None), (0.4, 0.04, None))] * 2)
        e2 = S.accuracy_difference([((0.3, 0.03, None), (0.4, 0.04, None)),
                                    ((0.3, 0.03, None), (0.2, 0.04, None))])
        self.assertGreater(e2.hi - e2.lo, e1.hi - e1.lo)

    def test_paired_bootstrap_with_per_example_results(self):
        a = [1, 0, 1, 0, 1, 0, 1, 0] * 5
        b = [1, 1, 1, 0, 1, 1, 1, 0] * 5  # b is right wherever a is, and more
        e = S.accuracy_difference([((0.5, 0.08, a), (0.75, 0.07, b))], scale=100)
        self.assertAlmostEqual(e.value, 25.0)
        self.assertIn("paired", e.how)
        self.assertGreater(e.lo, 0)
        unpaired = S.accuracy_difference([((0.5, 0.08, None), (0.75, 0.07, None))], scale=100)
        self.assertGreater(unpaired.hi - unpaired.lo, e.hi - e.lo)


# What `lory_eval --compare dense=..,lory-8e=.. --out FILE` writes (gains as fractions).
COMPARE_TWO_SEEDS = {
    "reference": "dense", "paired": True,
    "models": [{"label": "dense", "runs": ["d1.json", "d2.json"], "seeds": ["1", "2"]},
               {"label": "lory-8e", "runs": ["l1.json", "l2.json"], "seeds": ["1", "2"]}],
    "domains": {
        "books": {"tokens": 32768, "ppl": [283.04, 241.48], "sd": [22.56, 7.47],
                  "gains": [{"model": "lory-8e", "gain": 0.147, "lo": 0.113, "hi": 0.18, "significant": True}]},
        "all": {"tokens": 249856, "ppl": [240.86, 212.73], "sd": [16.23, 7.44],
                "gains": [{"model": "lory-8e", "gain": 0.117, "lo": 0.094, "hi": 0.14, "significant": True}]},
    },
}

COMPARE_THREE_MODELS_ONE_SEED = {
    "reference": "dense", "paired": True,
    "domains": {
        "books": {"tokens": 8192, "ppl": [561.54, 569.76, 560.0], "sd": [None, None, None],
                  "gains": [{"model": "lory", "gain": -0.015, "lo": -0.037, "hi": 0.003, "significant": False},
                            {"model": "l16", "gain": 0.003, "lo": None, "hi": None, "significant": False}]},
    },
}


class TestReaders(unittest.TestCase):
    def test_compare_with_seeds(self):
        rows = M.compare_rows(COMPARE_TWO_SEEDS)
        self.assertEqual(list(rows), ["books", "all"])
        self.assertEqual(rows["books"]["ppl"], [283.04, 241.48])
        self.assertEqual(rows["books"]["sd"], [22.56, 7.47])
        [g] = rows["all"]["gains"]
        self.assertAlmostEqual(g["gain"], 11.7)
        self.assertAlmostEqual(g["lo"], 9.4)
        self.assertAlmostEqual(g["hi"], 14.0)
        self.assertTrue(g["beyond"])
        self.assertEqual(rows["all"]["tokens"], 249856)

    def test_compare_of_three_models_one_seed(self):
        rows = M.compare_rows(COMPARE_THREE_MODELS_ONE_SEED)
        self.assertEqual(rows["books"]["sd"], [None, None, None])
        self.assertEqual([round(g["gain"], 6) for g in rows["books"]["gains"]], [-1.5, 0.3])
        self.assertEqual([g["beyond"] for g in rows["books"]["gains"]], [False, False])
        # too few blocks for an interval: NaN bounds, which no verdict can call beyond the uncertainty
        g = rows["books"]["gains"][1]
        self.assertTrue(g["lo"] != g["lo"] and g["hi"] != g["hi"])
        v = S.judge((">", 0), S.Estimate(g["gain"], g["lo"], g["hi"], "test", 1))
        self.assertEqual(v.status, "inconclusive")

    def test_compare_without_rows(self):
        with self.assertRaises(M.ReadError):
            M.compare_rows({"error": "something went wrong"})
        with self.assertRaises(M.ReadError):
            M.compare_rows({"domains": {"books": {"tokens": 1, "ppl": [2.0]}}})

    def test_metrics_of_a_resumed_run(self):
        records = [
            {"type": "train", "step": 1, "tokens": 10, "loss": 5.0},
            {"type": "event", "event": "upcycle", "step": 1, "num_experts": 8},
            {"type": "train", "step": 2, "tokens": 20, "loss": 4.0, "experts_used": [3, 4]},
            {"type": "train", "step": 3, "tokens": 30, "loss": 9.9},   # abandoned by the resume below
            {"type": "train", "step": 3, "tokens": 30, "loss": 3.0, "experts_used": [5, 6]},
            {"type": "train", "step": 4, "tokens": 40, "loss": None},  # a NaN loss, written as null
            {"type": "memory", "step": 1},
        ]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "metrics.jsonl")
            with open(path, "w") as f:
                f.write("\n".join(json.dumps(r) for r in records) + "\n")
            m = M.Metrics(path)
        self.assertEqual([r["step"] for r in m.train], [1, 2, 3, 4])
        self.assertEqual(m.losses()[3], 3.0)
        self.assertEqual(m.num_experts, 8)
        self.assertEqual(m.last_with("experts_used")["experts_used"], [5, 6])
        self.assertEqual([r["step"] for r in m.window([0.5, 1.0])], [3, 4])

    def test_paired_series_uses_common_steps_inside_the_window(self):
        class Fake:
            def __init__(self, losses):
                self.train = [{"step": s, "loss": l, "tokens": s * 10} for s, l in losses.items()]
                self.last_step = max(losses)

            def losses(self):
                return {r["step"]: r["loss"] for r in self.train}

        a = Fake({s: 5.0 for s in range(1, 11)})
        b = Fake({s: 4.0 + s / 100 for s in range(1, 11) if s != 9})
        series = M.paired_series([b, a], [1, -1], [0.8, 1.0])
        self.assertEqual(len(series), 1)  # step 9 is missing from b; step 8 is at 80%, not after it
        self.assertAlmostEqual(series[0], -0.9)
        steps, tokens, values = M.paired_curve([b, a], [1, -1])
        self.assertEqual(len(steps), 9)
        self.assertEqual(tokens[0], 10)

    def test_task_results(self):
        doc = {"tasks": {"continuation": {"acc": 0.3, "acc_stderr": 0.03, "acc_norm": 0.35, "acc_norm_stderr": 0.04},
                         "domain": {"acc": 0.5, "acc_stderr": 0.04, "acc_norm": 0.5, "acc_norm_stderr": 0.04}}}
        acc, se, per = M.task_result(doc, "mean", "acc")
        self.assertAlmostEqual(acc, 0.4)
        self.assertAlmostEqual(se, 0.025)
        self.assertIsNone(per)
        self.assertEqual(M.task_result(doc, "domain", "acc_norm")[0], 0.5)
        self.assertEqual(M.task_result(doc, "hellaswag", "acc"), (None, None, None))

    def test_model_line(self):
        self.assertEqual(M.model_line("model: dense, 4 layers: 3.3M parameters (3.3M active)\nplan: ..."),
                         "dense, 4 layers: 3.3M parameters (3.3M active)")


if __name__ == "__main__":
    unittest.main()
