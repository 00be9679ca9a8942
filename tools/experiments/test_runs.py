"""Tests of run keying and sharing: identical resolved configs are one run, whatever else differs
in where they write; a finished run is skipped and a checkpointed one resumed. No training.
Run: python3 -m unittest discover -s tools/experiments -p 'test_*.py'"""
import os
import tempfile
import unittest

import plans as P
import runs as R
from run import check_same, parse_set

RESOLVED = {
    "model": {"hidden_size": 192, "num_experts": 8, "segment_length": 64},
    "data": {"train": "data/main/instances/train-similarity.bin", "valid": "data/main/shards/valid-*.bin"},
    "optim": {"lr": 0.001},
    "schedule": {"tokens": 491520, "steps": 0},
    "train": {"seed": 1, "threads": 0, "global_batch_tokens": 8192},
    "checkpoint": {"dir": "runs/a", "every": 20, "keep_last": 1},
    "log": {"every": 1, "metrics": "", "peak_tflops": 0.0},
}


def resolved(**changes):
    doc = {k: dict(v) for k, v in RESOLVED.items()}
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        doc[section][key] = value
    return doc


class TestRunKey(unittest.TestCase):
    def test_where_a_run_writes_does_not_change_its_key(self):
        a = R.run_key(resolved(), {})
        self.assertEqual(a, R.run_key(resolved(checkpoint__dir="elsewhere", checkpoint__every=0,
                                               checkpoint__keep_last=3, train__threads=2,
                                               log__peak_tflops=989.0, log__metrics="m.jsonl"), {}))
        self.assertEqual(len(a), 12)

    def test_what_a_run_computes_changes_its_key(self):
        a = R.run_key(resolved(), {})
        for change in ({"optim__lr": 0.002}, {"train__seed": 2}, {"model__segment_length": 32},
                       {"data__train": "data/main/instances/train-random.bin"}, {"log__every": 10}):
            self.assertNotEqual(a, R.run_key(resolved(**change), {}), change)

    def test_a_regenerated_corpus_of_another_size_is_another_run(self):
        self.assertNotEqual(R.run_key(resolved(), {"x.bin": 100}), R.run_key(resolved(), {"x.bin": 101}))

    def test_key_ignores_dict_order(self):
        doc = resolved()
        reordered = {k: doc[k] for k in reversed(list(doc))}
        self.assertEqual(R.run_key(doc, {}), R.run_key(reordered, {}))

    def test_data_sizes_reads_the_files_a_config_names(self):
        with tempfile.TemporaryDirectory() as d:
            train = os.path.join(d, "train.bin")
            shards = [os.path.join(d, f"valid-{i}.bin") for i in range(2)]
            for i, p in enumerate([train] + shards):
                with open(p, "wb") as f:
                    f.write(b"x" * (i + 1))
            sizes = R.data_sizes({"data": {"train": train, "valid": os.path.join(d, "valid-*.bin")}})
            self.assertEqual(sizes, {train: 1, shards[0]: 2, shards[1]: 3})


class TestSharing(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.runner = R.Runner("build/bin", self.dir.name, "data/main", log=lambda *a: None)

    def tearDown(self):
        self.dir.cleanup()

    def spec(self, seed=1, **changes):
        s = R.RunSpec("configs/cpu-dense.toml", [("schedule.tokens", 491520)], seed)
        s.resolved = resolved(train__seed=seed, **changes)
        s.key = R.run_key(s.resolved, {})
        return s

    def test_identical_runs_from_two_plans_are_one(self):
        a = self.runner.intern(self.spec(), "dense-vs-lory", "dense")
        b = self.runner.intern(self.spec(checkpoint__dir="other"), "batching", "dense")
        self.assertIs(a, b)
        self.assertEqual(a.requesters, [("dense-vs-lory", "dense"), ("batching", "dense")])
        self.assertTrue(os.path.basename(a.dir).startswith("dense-s1-"))
        self.assertTrue(a.dir.endswith(a.key))

    def test_different_seeds_are_different_runs(self):
        a = self.runner.intern(self.spec(1), "p", "dense")
        b = self.runner.intern(self.spec(2), "p", "dense")
        self.assertIsNot(a, b)
        self.assertNotEqual(a.dir, b.dir)

    def test_an_existing_directory_is_found_by_key_whatever_its_name(self):
        spec = self.spec()
        existing = os.path.join(self.dir.name, "_runs", f"named-by-another-plan-{spec.key}")
        os.makedirs(os.path.join(existing, "checkpoints", "step-00000020"))
        shared = self.runner.intern(spec, "p", "dense")
        self.assertEqual(shared.dir, existing)
        self.assertEqual(shared.state, "partial")
        self.assertIn("--resume", self.runner.train_command(shared))

    def test_finished_runs_are_skipped(self):
        spec = self.spec()
        d = os.path.join(self.dir.name, "_runs", f"dense-s1-{spec.key}")
        os.makedirs(d)
        open(os.path.join(d, "eval.json"), "w").close()
        shared = self.runner.intern(spec, "p", "dense")
        self.assertEqual(shared.state, "done")
        self.assertTrue(self.runner.train(shared, 1, 1))  # nothing to run

    def test_a_resumed_run_keeps_the_commit_its_first_part_was_trained_at(self):
        spec = self.runner.intern(self.spec(), "p", "dense")
        os.makedirs(spec.dir)
        saved = R._commit
        try:
            R._commit = "aaa1111"
            self.runner.write_meta(spec, "running")
            self.assertEqual(self.runner.read_meta(spec)["engine_commit"], "aaa1111")
            self.runner.write_meta(spec, "done")  # the same commit: named once
            self.assertEqual(self.runner.read_meta(spec)["engine_commit"], "aaa1111")
            R._commit = "bbb2222"  # resumed after a new commit
            self.runner.write_meta(spec, "done")
            self.assertEqual(self.runner.read_meta(spec)["engine_commit"], "aaa1111, bbb2222")
        finally:
            R._commit = saved

    def test_new_run_command(self):
        shared = self.runner.intern(self.spec(), "p", "dense")
        argv = self.runner.train_command(shared)
        self.assertEqual(shared.state, "new")
        self.assertEqual(argv[:3], ["build/bin/lory_train", "--config", "configs/cpu-dense.toml"])
        self.assertIn("--schedule.tokens=491520", argv)
        self.assertIn("--train.seed=1", argv)
        self.assertIn(f"--checkpoint.dir={shared.dir}", argv)
        self.assertNotIn("--resume", argv)

    def test_unresolvable_arm_keeps_its_error(self):
        s = R.RunSpec("configs/cpu-lory-8e.toml", [("model.moe_type", "expert_choice_token")], 1)
        s.error, s.state = "unknown key --model.moe_type", "failed"
        self.assertIs(self.runner.intern(s, "expert-choice", "ec-token"), s)
        self.assertIsNone(s.dir)

    def test_tasks_file_names_say_how_they_were_scored(self):
        self.assertEqual(R.tasks_name("ab12", "prompt", 3, 0), "tasks-ab12-prompt-3shot.json")
        self.assertEqual(R.tasks_name("ab12", "segment", 1, 24), "tasks-ab12-segment-1shot-first24.json")


class TestSameTokens(unittest.TestCase):
    class FakePlan:
        path = "plans/x.toml"
        same = P.DEFAULT_SAME

    def spec(self, **changes):
        s = R.RunSpec("c", [], 1)
        s.resolved = resolved(**changes)
        return s

    def test_arms_with_the_same_tokens_pass(self):
        check_same(self.FakePlan, {("a", 1): self.spec(), ("b", 1): self.spec(model__num_experts=16)})

    def test_arms_with_different_tokens_are_refused_naming_both(self):
        with self.assertRaises(P.PlanError) as cm:
            check_same(self.FakePlan, {("a", 1): self.spec(), ("b", 1): self.spec(schedule__tokens=1)})
        msg = str(cm.exception)
        self.assertIn("'a'", msg)
        self.assertIn("'b'", msg)
        self.assertIn("schedule.tokens", msg)
        self.assertIn("plans/x.toml", msg)


class TestSetOption(unittest.TestCase):
    def test_values_are_typed_as_toml(self):
        self.assertEqual(parse_set(["train.device=cuda", "schedule.tokens=1000", "optim.lr=2e-4",
                                    "train.overlap_comm=false"]),
                         [("train.device", "cuda"), ("schedule.tokens", 1000), ("optim.lr", 2e-4),
                          ("train.overlap_comm", False)])

    def test_bad_form(self):
        with self.assertRaises(P.PlanError):
            parse_set(["tokens=3"])


if __name__ == "__main__":
    unittest.main()
