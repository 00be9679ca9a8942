"""Training runs and evaluations: resolving an arm to a lory_train command, keying runs by their
resolved config (identical runs are shared by every plan that asks for them), training or
resuming them, and the extra evaluations (lory_eval with another routing, lory_eval --tasks)."""
import fcntl
import glob
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import tomllib

from plans import override_text

# Resolved-config keys that cannot change what a run computes or what the analyses read: where it
# writes, how often it checkpoints, the MFU estimate, the thread count.
NOT_IN_KEY = {"checkpoint.dir", "checkpoint.every", "checkpoint.keep_last", "log.metrics", "log.peak_tflops",
              "train.threads"}


def quote(argv):
    return " ".join(shlex.quote(a) for a in argv)


def flatten(doc, prefix=""):
    out = {}
    for k, v in doc.items():
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(flatten(v, name))
        else:
            out[name] = v
    return out


def run_key(resolved, data_sizes):
    """The identity of a run: its resolved config (minus NOT_IN_KEY) and the sizes of its data
    files (a regenerated corpus of another size is another run). 12 hex digits of SHA-256."""
    config = {k: v for k, v in flatten(resolved).items() if k not in NOT_IN_KEY}
    blob = json.dumps({"config": config, "data": data_sizes}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def data_sizes(config):
    """{path: bytes} of the training instances and the held-out shards a resolved config names."""
    flat = flatten(config)
    sizes = {}
    paths = [flat.get("data.train", "")]
    for pattern in str(flat.get("data.valid", "")).split(","):
        pattern = pattern.strip()
        if pattern:
            paths += sorted(glob.glob(pattern)) or [pattern]
    for p in paths:
        if p:
            sizes[p] = os.path.getsize(p) if os.path.isfile(p) else None
    return sizes


class RunSpec:
    """One training run: a base config, overrides and a seed; requested by one or more (plan, arm)."""

    def __init__(self, config, overrides, seed):
        self.config = config
        self.overrides = overrides  # [(key, value)] in the order given
        self.seed = seed
        self.resolved = None        # lory_train --print-config, parsed
        self.key = None
        self.error = None           # why it cannot run (lory_train refused its config, training failed)
        self.requesters = []        # (plan name, arm name)
        self.dir = None
        self.seconds = None
        self.state = "new"          # new | partial | done | failed | skipped

    def override_args(self):
        return [f"--{k}={override_text(v)}" for k, v in self.overrides] + [f"--train.seed={self.seed}"]

    def flat(self):
        return flatten(self.resolved) if self.resolved else {}


class Runner:
    """Executes lory_train / lory_eval / lory_tasks and keeps the shared run directory (OUT/_runs)."""

    def __init__(self, bin_dir, out, data, dry_run=False, verbose=False, log=print):
        self.bin = bin_dir
        self.out = out
        self.data = data
        self.runs_dir = os.path.join(out, "_runs")
        self.tasks_dir = os.path.join(out, "_tasks")
        self.dry_run = dry_run
        self.verbose = verbose
        self.log = log
        self.commands = []  # every command this invocation ran or would run, for the reports
        self.specs = {}     # key -> RunSpec
        self.task_paths_seen = []

    def tool(self, name):
        path = os.path.join(self.bin, name)
        for _ in range(30):  # a binary being relinked is missing for a moment
            if os.access(path, os.X_OK):
                return path
            time.sleep(1)
        raise FileNotFoundError(f"{path} not found or not executable: build first (make), or pass --bin DIR")

    # ---- resolving --------------------------------------------------------------

    def resolve(self, spec):
        """Fills spec.resolved and spec.key from `lory_train --print-config`, or spec.error with
        what lory_train said (an unknown key, a bad value)."""
        argv = [self.tool("lory_train"), "--config", spec.config] + spec.override_args() + ["--print-config"]
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode != 0:
            spec.error = (p.stderr.strip() or p.stdout.strip() or f"exit status {p.returncode}") + \
                f"\n(command: {quote(argv)})"
            spec.state = "failed"
            return spec
        try:
            spec.resolved = tomllib.loads(p.stdout)
        except tomllib.TOMLDecodeError as e:
            spec.error = f"lory_train --print-config printed no valid TOML ({e}):\n{p.stdout[:2000]}"
            spec.state = "failed"
            return spec
        spec.key = run_key(spec.resolved, data_sizes(spec.resolved))
        return spec

    def intern(self, spec, plan, arm):
        """The shared RunSpec of spec's key (the same run asked for by another plan or arm)."""
        if spec.key is None:
            spec.requesters.append((plan, arm))
            return spec
        shared = self.specs.setdefault(spec.key, spec)
        shared.requesters.append((plan, arm))
        if shared.dir is None:
            shared.dir = self.find_dir(shared.key, f"{arm}-s{shared.seed}")
            shared.state = self.state_of(shared.dir)
        return shared

    def find_dir(self, key, slug):
        found = sorted(glob.glob(os.path.join(self.runs_dir, f"*-{key}")))
        return found[0] if found else os.path.join(self.runs_dir, f"{slug}-{key}")

    @staticmethod
    def state_of(directory):
        if os.path.isfile(os.path.join(directory, "eval.json")):
            return "done"
        if glob.glob(os.path.join(directory, "checkpoints", "step-*")):
            return "partial"
        return "new"

    # ---- training ---------------------------------------------------------------

    def train_command(self, spec):
        argv = [os.path.join(self.bin, "lory_train"), "--config", spec.config] + spec.override_args() + \
            [f"--checkpoint.dir={spec.dir}"]
        if spec.state == "partial":
            argv.append("--resume")
        return argv

    def train(self, spec, index, total):
        """Trains (or resumes) one run; returns True when it ends with an eval.json."""
        who = ", ".join(sorted({f"{p}/{a}" for p, a in spec.requesters}))
        name = os.path.basename(spec.dir)
        if spec.state == "done":
            self.log(f"[{index}/{total}] {name}: done already ({who})")
            return True
        argv = self.train_command(spec)
        self.commands.append(quote(argv))
        verb = "resume" if spec.state == "partial" else "train"
        if self.dry_run:
            self.log(f"[{index}/{total}] would {verb} {name} ({who}):\n    {quote(argv)}")
            return False
        os.makedirs(spec.dir, exist_ok=True)
        lock = open(os.path.join(spec.dir, ".lock"), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            spec.error = f"another runner is training {spec.dir} (it holds {spec.dir}/.lock)"
            spec.state = "failed"
            self.log(f"[{index}/{total}] {name}: SKIPPED: {spec.error}")
            return False
        try:
            earlier = (self.read_seconds(spec) or 0.0) if spec.state == "partial" else 0.0
            spec.seconds = earlier or None
            self.write_meta(spec, status="running")
            self.log(f"[{index}/{total}] {verb} {name} ({who}) ...")
            start = time.monotonic()
            try:
                rc = self.execute(argv, os.path.join(spec.dir, "train.log"))
            except Interrupted:
                spec.seconds = earlier + time.monotonic() - start
                self.write_meta(spec, status="interrupted")
                raise
            spec.seconds = earlier + time.monotonic() - start  # every attempt of this run
            if rc == 0 and os.path.isfile(os.path.join(spec.dir, "eval.json")):
                spec.state = "done"
                self.write_meta(spec, status="done")
                self.log(f"[{index}/{total}] {name}: done in {spec.seconds:.0f} s")
                return True
            tail = self.tail(os.path.join(spec.dir, "train.log"))
            spec.error = f"lory_train exited with status {rc}:\n{tail}"
            spec.state = "failed"
            self.write_meta(spec, status="failed")
            self.log(f"[{index}/{total}] {name}: FAILED (exit {rc}); the end of {spec.dir}/train.log:\n{tail}")
            return False
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def execute(self, argv, log_path):
        """Runs argv with its output appended to log_path (and echoed with --verbose); its exit
        status. The child runs in its own session, and a SIGINT/SIGTERM to the runner is passed on
        to it once: lory_train then checkpoints and exits (128 + signal), and the runner stops after
        it, so the next invocation resumes instead of losing the steps since the last checkpoint."""
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"\n$ {quote(argv)}\n")
            log.flush()
            p = subprocess.Popen(argv, stdout=subprocess.PIPE if self.verbose else log, stderr=subprocess.STDOUT,
                                 text=True, start_new_session=True)
            received = []

            def forward(signum, _frame):
                if not received:
                    try:
                        p.send_signal(signum)
                    except ProcessLookupError:
                        pass
                received.append(signum)

            previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                if self.verbose:
                    for line in p.stdout:
                        log.write(line)
                        sys.stdout.write("    " + line)
                rc = p.wait()
            finally:
                for s, h in previous.items():
                    signal.signal(s, h)
            if received:
                raise Interrupted(f"stopped by signal {received[0]} ({os.path.basename(argv[0])} exited with {rc}); "
                                  f"run the same command again to resume")
            return rc

    @staticmethod
    def tail(path, lines=15):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:]).rstrip()
        except OSError:
            return "(no log)"

    def write_meta(self, spec, status):
        meta = {
            "status": status,
            "key": spec.key,
            "config": spec.config,
            "overrides": {k: v for k, v in spec.overrides},
            "seed": spec.seed,
            "requested_by": sorted({f"{p}/{a}" for p, a in spec.requesters}),
            "command": quote(self.train_command(spec)),
            "train_seconds": spec.seconds,
            "engine_commit": self.engine_commits(spec),
            "finished" if status == "done" else "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "resolved_config": spec.resolved,
        }
        old = os.path.join(spec.dir, "run.json")
        tmp = old + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
        os.replace(tmp, old)

    def trained_at(self, spec):
        """The commits run.json says the run was trained at, in order (one per commit its attempts ran at)."""
        return [c.strip() for c in str(self.read_meta(spec).get("engine_commit") or "").split(",") if c.strip()]

    def engine_commits(self, spec):
        """The commit this run is trained at now, after those of its earlier attempts (a run resumed at
        another commit names both: "abc1234, def5678")."""
        earlier = self.trained_at(spec)
        now = git_commit() or "unknown"
        return ", ".join(earlier + ([now] if now not in earlier else []))

    def read_meta(self, spec):
        """The run's run.json as a dict ({} when missing or unreadable)."""
        try:
            with open(os.path.join(spec.dir, "run.json"), encoding="utf-8") as f:
                meta = json.load(f)
            return meta if isinstance(meta, dict) else {}
        except (OSError, ValueError, TypeError):
            return {}

    def read_seconds(self, spec):
        return self.read_meta(spec).get("train_seconds")

    # ---- evaluations ------------------------------------------------------------

    def perplexity(self, spec, routing):
        """eval-<routing>.json of a trained run (lory_eval on the held-out shards); its path or None."""
        if routing == "causal_segment":
            return os.path.join(spec.dir, "eval.json")
        out = os.path.join(spec.dir, f"eval-{routing}.json")
        flat = spec.flat()
        argv = [os.path.join(self.bin, "lory_eval"), "--ckpt", spec.dir, "--data", str(flat["data.valid"]),
                "--routing", routing, "--seq-len", str(flat["model.max_position_embeddings"]),
                "--tokens-per-domain", str(flat["eval.tokens_per_domain"]), "--batch", str(flat["eval.batch"]),
                "--out", out]
        return self.evaluate(argv, out, os.path.join(spec.dir, f"eval-{routing}.log"), spec)

    def tasks(self, spec, task_files, routing, shots, seed, max_examples, tag):
        out = os.path.join(spec.dir, tasks_name(tag, routing, shots, max_examples))
        argv = [os.path.join(self.bin, "lory_eval"), "--ckpt", spec.dir, "--tasks", ",".join(task_files),
                "--tokenizer", os.path.join(self.data, "tokenizer.model"), "--shots", str(shots),
                "--seed", str(seed), "--routing", routing, "--out", out]
        if max_examples:
            argv += ["--max-examples", str(max_examples)]
        return self.evaluate(argv, out, out[:-5] + ".log", spec)

    def evaluate(self, argv, out, log_path, spec):
        self.commands.append(quote(argv))
        if os.path.isfile(out):
            return out
        if self.dry_run or spec.state != "done":
            return None
        self.tool(os.path.basename(argv[0]))
        self.log(f"    evaluate {os.path.basename(spec.dir)}: {os.path.basename(out)}")
        rc = self.execute(argv, log_path)
        if rc != 0 or not os.path.isfile(out):
            raise EvalFailure(f"{quote(argv)} exited with status {rc}:\n{self.tail(log_path)}")
        return out

    def task_files(self, kinds, settings):
        """Builds (once) the multiple-choice task files from the held-out corpus (valid + test
        JSONL of DATA/corpus): OUT/_tasks/<hash>/<kind>.jsonl; returns their paths and the hash."""
        corpus = [os.path.join(self.data, "corpus", f"{s}.jsonl") for s in ("valid", "test")]
        ident = {"corpus": {p: os.path.getsize(p) if os.path.isfile(p) else None for p in corpus},
                 "settings": {k: settings[k] for k in sorted(settings) if k not in ("shots", "max_examples")}}
        tag = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]
        folder = os.path.join(self.tasks_dir, tag)
        heldout = os.path.join(folder, "heldout.jsonl")
        paths = []
        for kind in kinds:
            path = os.path.join(folder, f"{kind}.jsonl")
            paths.append(path)
            self.task_paths_seen.append(path)
            argv = [os.path.join(self.bin, "lory_tasks"), "build", "--corpus", heldout, "--kind", kind,
                    "--examples", str(settings["examples"]), "--train-examples", str(settings["train_examples"]),
                    "--seed", str(settings.get("seed", 1)), "--out", path]
            for key, flag in (("context_bytes", "--context-bytes"), ("continuation_bytes", "--continuation-bytes")):
                if key in settings:
                    argv += [flag, str(settings[key])]
            self.commands.append(f"cat {quote(corpus)} > {shlex.quote(heldout)}")
            self.commands.append(quote(argv))
            if os.path.isfile(path) or self.dry_run:
                continue
            os.makedirs(folder, exist_ok=True)
            if not os.path.isfile(heldout):
                missing = [p for p in corpus if not os.path.isfile(p)]
                if missing:
                    raise EvalFailure(f"the held-out corpus {missing[0]} is missing (tools/prepare-data.sh makes it)")
                with open(heldout + ".tmp", "wb") as f:
                    for p in corpus:
                        with open(p, "rb") as src:
                            f.write(src.read())
                os.replace(heldout + ".tmp", heldout)
            self.tool("lory_tasks")
            p = subprocess.run(argv, capture_output=True, text=True)
            if p.returncode != 0:
                raise EvalFailure(f"{quote(argv)} exited with status {p.returncode}: {p.stderr.strip()}")
        return paths, tag

    def compare(self, models):
        """`lory_eval --compare` of [(label, [eval JSON per seed])]: its JSON (--out), and the command
        that prints the same table."""
        spec = ",".join(f"{label}={'+'.join(paths)}" for label, paths in models)
        with tempfile.TemporaryDirectory(prefix="lory-compare-") as tmp:
            out = os.path.join(tmp, "compare.json")
            argv = [self.tool("lory_eval"), "--compare", spec, "--out", out]
            p = subprocess.run(argv, capture_output=True, text=True)
            if p.returncode != 0:
                raise EvalFailure(f"{quote(argv)} exited with status {p.returncode}: {p.stderr.strip()}")
            with open(out) as f:
                doc = json.load(f)
        return doc, quote([os.path.join(self.bin, "lory_eval"), "--compare", spec])


def tasks_name(tag, routing, shots, max_examples):
    """The accuracy JSON's name in a run directory: what was scored, and how."""
    return f"tasks-{tag}-{routing}-{shots}shot{f'-first{max_examples}' if max_examples else ''}.json"


class EvalFailure(Exception):
    """An evaluation (lory_eval, lory_tasks) failed: the message has the command and its output."""


class Interrupted(Exception):
    """The runner was asked to stop while a tool ran; the tool checkpointed (lory_train) and exited."""


_commit = None


def git_commit():
    global _commit
    if _commit is None:
        try:
            p = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                               cwd=os.path.dirname(os.path.abspath(__file__)))
            _commit = p.stdout.strip() if p.returncode == 0 else ""
            d = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=os.path.dirname(os.path.abspath(__file__)))
            if _commit and d.returncode == 0 and d.stdout.strip():
                _commit += "+dirty"
        except OSError:
            _commit = ""
    return _commit
