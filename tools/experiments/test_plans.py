"""Tests of plan and budget parsing: every shipped plan reads, and a bad plan fails naming its file
and key. Run: python3 -m unittest discover -s tools/experiments -p 'test_*.py'"""
import os
import tempfile
import textwrap
import unittest

import plans as P

BUDGETS = textwrap.dedent("""
    [small]
    data = "data/quick"
    seeds = [1]
    [small.overrides]
    model.hidden_size = 64
    "schedule.tokens" = 61440
    [default]
    data = "data/main"
    seeds = [1, 2]
    [paper]
    data = "data"
    seeds = [1]
    [paper.configs]
    "configs/cpu-lory-8e.toml" = "configs/paper-0.3b-8e.toml"
""")

PLAN = textwrap.dedent("""
    [experiment]
    title = "t"
    seeds = { default = 3 }

    [[arm]]
    name = "dense"
    config = "configs/cpu-dense.toml"

    [[arm]]
    name = "lory"
    config = "configs/cpu-lory-8e.toml"
    overrides = { model.segment_length = 32, "optim.lr" = 2e-4 }
    budget.small.overrides = { model.segment_length = 16 }

    [[evaluation]]
    name = "tasks"
    kind = "tasks"
    arms = ["dense", "lory"]

    [[analysis]]
    kind = "loss_curves"
    name = "loss"
    arms = ["dense", "lory"]

    [[analysis.claim]]
    paper = "Lory is better."
    measure = "final_loss"
    a = "dense"
    b = "lory"
    expect = "< 0"

    [[analysis]]
    kind = "accuracy"
    name = "acc"
    arms = ["dense", "lory"]
    evaluation = "tasks"

    [[analysis.claim]]
    paper = "Lory is more accurate."
    measure = "accuracy_diff"
    evaluation = "tasks"
    a = "dense"
    b = "lory"
    expect = "within 3"
""")


class PlanFiles(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.budget_path = self.write("budgets.toml", BUDGETS)
        self.budgets = P.load_budgets(self.budget_path)

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def plan(self, text, name="p.toml"):
        return P.Plan(self.write(name, text), set(self.budgets))

    def error(self, text):
        with self.assertRaises(P.PlanError) as cm:
            self.plan(text)
        return str(cm.exception)


class TestBudgets(PlanFiles):
    def test_overrides_are_flattened_from_both_toml_forms(self):
        small = self.budgets["small"]
        self.assertEqual(small.overrides, {"model.hidden_size": 64, "schedule.tokens": 61440})
        self.assertEqual(small.seeds, [1])
        self.assertEqual(small.tasks["shots"], 3)  # defaults filled in

    def test_unknown_budget_key_names_file_and_key(self):
        path = self.write("b.toml", '[x]\ndata = "d"\nseeds = [1]\nsedes = [2]\n')
        with self.assertRaises(P.PlanError) as cm:
            P.load_budgets(path)
        self.assertIn("b.toml", str(cm.exception))
        self.assertIn("'sedes'", str(cm.exception))

    def test_bad_seeds_and_windows_are_refused(self):
        for body, what in (('seeds = [0]', "seeds"), ('seeds = [1]\nfinal_window = [0.9, 0.5]', "final_window")):
            path = self.write("b.toml", f'[x]\ndata = "d"\n{body}\n')
            with self.assertRaises(P.PlanError) as cm:
                P.load_budgets(path)
            self.assertIn(what, str(cm.exception))

    def test_override_key_must_be_section_dot_key(self):
        path = self.write("b.toml", '[x]\ndata = "d"\nseeds = [1]\n[x.overrides]\nlr = 1\n')
        with self.assertRaises(P.PlanError) as cm:
            P.load_budgets(path)
        self.assertIn("'lr'", str(cm.exception))

    def test_shipped_budgets_read(self):
        budgets = P.load_budgets()
        self.assertTrue({"small", "default", "large", "paper"} <= set(budgets))
        self.assertEqual(budgets["paper"].configs["configs/cpu-lory-8e.toml"], "configs/paper-0.3b-8e.toml")


class TestPlans(PlanFiles):
    def test_a_good_plan_reads(self):
        plan = self.plan(PLAN)
        self.assertEqual(list(plan.arms), ["dense", "lory"])
        self.assertEqual(plan.analyses[0].claims[0].expect, ("<", 0.0))
        self.assertEqual(plan.analyses[1].claims[0].expect, ("within", 3.0))
        self.assertEqual(plan.evaluations["tasks"].routing, "prompt")
        self.assertEqual(plan.evaluations["tasks"].tasks, ["continuation", "domain"])

    def test_arm_overrides_per_budget_and_config_map(self):
        lory = self.plan(PLAN).arms["lory"]
        config, ov = lory.for_budget(self.budgets["small"])
        self.assertEqual(config, "configs/cpu-lory-8e.toml")
        self.assertEqual(ov, {"model.segment_length": 16, "optim.lr": 2e-4})
        config, ov = lory.for_budget(self.budgets["default"])
        self.assertEqual(ov["model.segment_length"], 32)
        config, _ = lory.for_budget(self.budgets["paper"])
        self.assertEqual(config, "configs/paper-0.3b-8e.toml")

    def test_seeds_from_plan_budget_or_command_line(self):
        plan = self.plan(PLAN)
        self.assertEqual(plan.seeds_for(self.budgets["default"]), [1, 2, 3])
        self.assertEqual(plan.seeds_for(self.budgets["small"]), [1])
        self.assertEqual(plan.seeds_for(self.budgets["small"], 2), [1, 2])

    def test_unknown_arm_key_names_plan_arm_and_key(self):
        msg = self.error(PLAN.replace('name = "dense"', 'name = "dense"\noverides = {}'))
        self.assertIn("p.toml", msg)
        self.assertIn("'dense'", msg)
        self.assertIn("'overides'", msg)

    def test_unknown_top_level_table(self):
        self.assertIn("'arms'", self.error(PLAN.replace("[[arm]]", "[[arms]]", 1)))

    def test_claim_naming_a_missing_arm(self):
        msg = self.error(PLAN.replace('b = "lory"\nexpect = "< 0"', 'b = "lorry"\nexpect = "< 0"'))
        self.assertIn("'lorry'", msg)
        self.assertIn("[[analysis]] 'loss'", msg)

    def test_bad_expect(self):
        msg = self.error(PLAN.replace('expect = "< 0"', 'expect = "smaller"'))
        self.assertIn("expect", msg)
        self.assertIn("smaller", msg)

    def test_measure_needs_its_keys(self):
        msg = self.error(PLAN.replace('a = "dense"\nb = "lory"\nexpect = "< 0"', 'a = "dense"\nexpect = "< 0"'))
        self.assertIn("needs 'b'", msg)

    def test_accuracy_claim_needs_a_tasks_evaluation(self):
        msg = self.error(PLAN.replace('evaluation = "tasks"\na = "dense"', 'a = "dense"'))
        self.assertIn("accuracy_diff", msg)

    def test_evaluation_must_cover_the_arms_read(self):
        msg = self.error(PLAN.replace('arms = ["dense", "lory"]\nrouting', 'arms = ["dense"]\nrouting')
                         .replace('kind = "tasks"\narms = ["dense", "lory"]', 'kind = "tasks"\narms = ["dense"]'))
        self.assertIn("does not cover", msg)

    def test_arm_budget_naming_an_unknown_budget(self):
        msg = self.error(PLAN.replace("budget.small.overrides", "budget.tiny.overrides"))
        self.assertIn("no budget 'tiny'", msg)

    def test_bad_override_value(self):
        msg = self.error(PLAN.replace('overrides = { model.segment_length = 32, "optim.lr" = 2e-4 }',
                                      'overrides = { model.segment_length = [32] }'))
        self.assertIn("model.segment_length", msg)

    def test_duplicate_arm(self):
        self.assertIn("two arms", self.error(PLAN.replace('name = "lory"', 'name = "dense"')))

    def test_invalid_toml_names_the_file(self):
        msg = self.error("[experiment\n")
        self.assertIn("p.toml", msg)
        self.assertIn("not valid TOML", msg)

    def test_plan_lookup_by_name(self):
        self.write("x.toml", PLAN)
        self.assertEqual(P.plan_paths(["x"], self.dir.name), [os.path.join(self.dir.name, "x.toml")])
        with self.assertRaises(P.PlanError) as cm:
            P.plan_paths(["y"], self.dir.name)
        self.assertIn("no plan 'y'", str(cm.exception))


class TestShippedPlans(unittest.TestCase):
    def test_every_shipped_plan_reads_and_names_existing_configs(self):
        budgets = P.load_budgets()
        root = os.path.dirname(os.path.dirname(P.HERE))
        plans = P.load_plans(None, budgets)
        self.assertEqual({p.name for p in plans}, {"dense-vs-lory", "routing-causal-vs-prefix",
                                                   "batching-similarity-vs-random", "expert-utilisation",
                                                   "ablations", "expert-choice"})
        for plan in plans:
            self.assertTrue(plan.analyses, plan.name)
            for arm in plan.arms.values():
                for budget in budgets.values():
                    config, _ = arm.for_budget(budget)
                    self.assertTrue(os.path.isfile(os.path.join(root, config)), f"{plan.name}/{arm.name}: {config}")


class TestHelpers(unittest.TestCase):
    def test_expect_forms(self):
        self.assertEqual(P.parse_expect(">= 0.5", "w"), (">=", 0.5))
        self.assertEqual(P.parse_expect("<-1e-3", "w"), ("<", -0.001))
        self.assertEqual(P.parse_expect("within 0.05", "w"), ("within", 0.05))
        with self.assertRaises(P.PlanError):
            P.parse_expect("within -1", "w")

    def test_override_text(self):
        self.assertEqual(P.override_text(True), "true")
        self.assertEqual(P.override_text(1.0), "1")
        self.assertEqual(P.override_text(2e-4), "0.0002")
        self.assertEqual(P.override_text("prefix"), "prefix")


if __name__ == "__main__":
    unittest.main()
