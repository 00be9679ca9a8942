#!/usr/bin/env python3
"""pytorch_baseline.py: lory_bench_train's training step in PyTorch eager.

What and why: the engine's tokens/s mean something only next to a well-known
implementation of the same model doing the same work on the same machine.
This script builds the model lory_bench_train builds (tools/lory_bench_train.cpp),
in plain PyTorch eager mode, and times the same training step:

  model    LLaMA-style decoder, as nn/lory_lm.h: ids [B, L] -> embedding ->
           N x (x + attn(rmsnorm(x)), then x + ffn(rmsnorm(x))) -> rmsnorm ->
           lm_head -> logits [B, L, V]; untied embeddings, no biases.
           attention: q, k, v, o projections [d, d], RoPE in Hugging Face's
           rotate_half layout (theta 10000) on q and k, causal softmax
           attention (F.scaled_dot_product_attention where torch has it,
           torch >= 2.0; else written out, as torch 1.13 needs).
           FFN: dense SwiGLU down(silu(gate(x)) * up(x)), or the Lory layer.
  Lory     nn/lory_ffn.h, paper §3.1 eq. (3), for x [B, L, d], N = ceil(L/T):
           h̄ = segment means [B, N, d] (a last partial segment averaged
           over its real tokens); p = softmax(router(h̄)) [B, N, E];
           segment 1 merged with p_1.detach() (stop-gradient on the router
           side), segment k > 1 with p_{k-1} (the causal shift);
           merged experts per segment as one GEMM over the flattened expert
           stack, W̄ = (e [S, E] @ W.view(E, out*in)).view(S, out, in)
           (nn/merge_experts.h), then the segment's tokens through W̄ with
           bmm: o = (silu(x W̄_g^T) * (x W̄_u^T)) W̄_d^T.
  loss     mean cross-entropy of tokens[:, 1:] from tokens[:, :-1]
  step     per micro-batch (loss / A).backward(); clip_grad_norm_(1.0);
           torch.optim.AdamW(lr 3e-4, betas (0.9, 0.95), eps 1e-8, weight
           decay 0.1 on matrices and expert stacks, not on norms or
           embeddings, as train/adamw.h); zero_grad(set_to_none=True)
  init     N(0, 0.02) for every matrix, router and embedding; norms 1
  dtypes   f32; bf16 = autocast (bf16 compute, f32 weights and optimizer
           state: PyTorch's mixed precision, as the engine's bf16 keeps f32
           master weights)

Timing and the row fields are lory_bench_train's: --warmup steps, then the
best of --rounds rounds of --steps steps; tokens/s, ms a step, MFU (model
FLOPs = 3 x (2(4d^2 + 3df) per layer + 2dV + causal attention 4d(L+1)/2 per
layer) per token: 6 x active matmul parameters + attention, Lory's merge not
counted) against a GEMM timed in this run or --peak-tflops; peak tensor
memory (CUDA: torch.cuda.max_memory_allocated; CPU: PyTorch keeps no count,
null), peak RSS, the CPU share of the counted round (CPU time / (wall x
threads): well under 1 when other work took the cores) and the Lory/dense
ratio of tokens/s with the issue's goals.

Install (Debian 12): apt-get install python3-torch (torch 1.13, CPU); or in a
venv: python3 -m venv .venv && .venv/bin/pip install torch. Without torch the
script prints what to install and exits 77 (skipped).

  python3 tools/bench/pytorch_baseline.py                              # the issue's shape, f32, CPU
  python3 tools/bench/pytorch_baseline.py --lory 8x64,8x256,32x256 --json torch.json
  python3 tools/bench/pytorch_baseline.py --quick                      # a smoke run
"""
import argparse
import json
import math
import os
import resource
import sys
import time

SKIPPED = 77

# The same presets as lory_bench_train: shape, Lory rows, dtype, device.
PRESETS = {
    "issue": dict(layers=4, hidden=256, ffn=688, heads=4, vocab=8000, batch=4, seq=512, accumulation=1,
                  lory="8x64", dtype="f32", device="cpu"),
    "main-job": dict(layers=4, hidden=192, ffn=512, heads=4, vocab=4096, batch=8, seq=256, accumulation=4,
                     lory="8x64", dtype="f32", device="cpu"),
    "paper-0.3b": dict(layers=24, hidden=1024, ffn=2816, heads=16, vocab=32000, batch=2, seq=4096, accumulation=1,
                       lory="8x256", dtype="bf16", device="cuda"),
}
QUICK = dict(layers=2, hidden=64, ffn=176, heads=2, vocab=512, batch=2, seq=128, accumulation=1, lory="4x32,8x64")
SHAPE_KEYS = ("layers", "hidden", "ffn", "heads", "vocab", "batch", "seq", "accumulation")
LEARNING_RATE, GRAD_CLIP, WEIGHT_DECAY, BETAS, EPS = 3e-4, 1.0, 0.1, (0.9, 0.95), 1e-8
ROPE_THETA, RMS_EPS, INIT_STD = 10000.0, 1e-5, 0.02


def fail_usage(message):
    print(f"pytorch_baseline: {message}\nrun '{sys.argv[0]} --help' for usage", file=sys.stderr)
    sys.exit(2)


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def int_list(text):
    try:
        return [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers (e.g. 8,32)")


def goal_for(experts, segment):
    """Issue 16's goals for Lory's tokens/s as a fraction of dense's."""
    return {(8, 64): 0.90, (8, 256): 0.95, (32, 256): 0.85}.get((experts, segment))


def model_flops_per_token(layers, d, f, vocab, seq):
    """3 x the forward's matmuls and causal attention (nn::flops_per_token without merge and router)."""
    matmul = layers * 2 * (4 * d * d + 3 * d * f) + 2 * d * vocab
    attention = layers * 4 * d * (seq + 1) / 2
    return 3.0 * (matmul + attention)


def parameter_counts(layers, d, f, vocab, experts):
    """Total and active parameters, as nn::count_parameters."""
    e = max(experts, 1)
    shared = 2 * vocab * d + layers * 4 * d * d + layers * experts * d + (2 * layers + 1) * d
    return shared + layers * e * 3 * d * f, shared + layers * 3 * d * f


def reset_peak_rss():
    """Starts a new peak RSS (Linux: /proc/self/clear_refs); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def process_cpu_seconds():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def build(torch, shape, experts, segment, device):
    nn, F = torch.nn, torch.nn.functional
    d, f, H, L = shape["hidden"], shape["ffn"], shape["heads"], shape["seq"]
    Dh = d // H
    has_sdpa = hasattr(F, "scaled_dot_product_attention")
    theta, rms_eps = shape.get("rope_theta", ROPE_THETA), shape.get("rms_norm_eps", RMS_EPS)

    def acc(x):  # reductions in f32 for bf16 inputs (f64 stays f64)
        return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x

    def normal(*size):
        return nn.Parameter(torch.empty(*size).normal_(0.0, INIT_STD))

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))

        def forward(self, x):
            xf = acc(x)
            y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + rms_eps)
            return (y * self.weight).to(x.dtype)

    # RoPE tables for positions 0..L-1, Hugging Face's rotate_half layout.
    inv_freq = 1.0 / (theta ** (torch.arange(0, Dh, 2, dtype=torch.float64) / Dh))
    angles = torch.outer(torch.arange(L, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)  # [L, Dh]
    cos, sin = angles.cos().to(device), angles.sin().to(device)  # f64, cast to the input's dtype
    causal = torch.ones(L, L, dtype=torch.bool, device=device).triu(1)

    def rope(x):  # x: [B, H, L, Dh]
        half = Dh // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return (x * cos.to(x.dtype) + rotated * sin.to(x.dtype))

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(d, d, bias=False) for _ in range(4))

        def forward(self, x):
            B = x.shape[0]
            q, k, v = (p(x).view(B, L, H, Dh).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
            q, k = rope(q), rope(k)
            if has_sdpa:
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(Dh))
                scores = scores.masked_fill(causal, float("-inf"))
                o = torch.matmul(torch.softmax(acc(scores), dim=-1).to(v.dtype), v)
            return self.o_proj(o.transpose(1, 2).reshape(B, L, d))

    class SwiGLU(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj = nn.Linear(d, f, bias=False)
            self.up_proj = nn.Linear(d, f, bias=False)
            self.down_proj = nn.Linear(f, d, bias=False)

        def forward(self, x):
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    class LoryFFN(nn.Module):
        """nn/lory_ffn.h: E SwiGLU experts merged in parameter space once per segment."""

        def __init__(self):
            super().__init__()
            # The engine's names: experts.{gate,up,down}_proj.weight, router.weight.
            self.experts = nn.Module()
            for proj, size in (("gate_proj", (experts, f, d)), ("up_proj", (experts, f, d)), ("down_proj", (experts, d, f))):
                setattr(self.experts, proj, nn.Module())
                getattr(self.experts, proj).weight = normal(*size)
            self.router = nn.Linear(d, experts, bias=False)  # [E, d]
            T = segment
            self.N = (L + T - 1) // T
            self.pad = self.N * T - L
            counts = torch.full((self.N, 1), float(T))
            counts[-1] = T - self.pad  # the last segment's real tokens
            self.register_buffer("counts", counts, persistent=False)

        def forward(self, x):  # x: [B, L, d]
            B, T, N, E = x.shape[0], segment, self.N, experts
            xp = F.pad(x, (0, 0, 0, self.pad)) if self.pad else x
            segs = xp.reshape(B * N, T, d)  # tokens grouped by segment: [S, T, d], S = B N
            # Steps 1-2: h̄_k (a final partial segment over its real tokens), p_k = Softmax(R(h̄_k)).
            means = (acc(xp.reshape(B, N, T, d)).sum(2) / self.counts).to(x.dtype)  # [B, N, d]
            probs = torch.softmax(self.router(means), dim=-1)  # [B, N, E]
            # Step 3, eq. (3): segment 1 by its own weights behind a stop-gradient, segment k by p_{k-1}.
            weights = torch.cat([probs[:, :1].detach(), probs[:, : N - 1]], dim=1).reshape(B * N, E)

            def merged(stack):  # W̄ = (e [S, E] @ W.view(E, out*in)).view(S, out, in)
                return torch.matmul(weights.to(stack.dtype), stack.reshape(E, -1)).view(B * N, *stack.shape[1:])

            # Steps 4-5: the segment's tokens through its merged SwiGLU.
            ex = self.experts
            g = torch.bmm(segs, merged(ex.gate_proj.weight).transpose(1, 2))
            u = torch.bmm(segs, merged(ex.up_proj.weight).transpose(1, 2))
            y = torch.bmm(F.silu(g) * u, merged(ex.down_proj.weight).transpose(1, 2))  # [S, T, d]
            y = y.view(B, N * T, d)
            return y[:, :L] if self.pad else y

    class DecoderLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = RMSNorm()
            self.self_attn = Attention()
            self.post_attention_layernorm = RMSNorm()
            self.mlp = LoryFFN() if experts > 0 else SwiGLU()

        def forward(self, x):
            h = x + self.self_attn(self.input_layernorm(x))
            return h + self.mlp(self.post_attention_layernorm(h))

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(shape["vocab"], d)
            self.layers = nn.ModuleList(DecoderLayer() for _ in range(shape["layers"]))
            self.norm = RMSNorm()
            self.lm_head = nn.Linear(d, shape["vocab"], bias=False)

        def logits(self, ids):  # ids: [B, L] -> [B, L, V]
            x = self.embed_tokens(ids)
            for layer in self.layers:
                x = layer(x)
            return self.lm_head(self.norm(x))

        def loss(self, tokens):  # tokens: [B, L+1]
            logits = self.logits(tokens[:, :-1])
            return F.cross_entropy(acc(logits.reshape(-1, logits.shape[-1])), tokens[:, 1:].reshape(-1))

    model = LM()
    with torch.no_grad():  # every matrix N(0, 0.02), as nn/ (nn.Linear's default init is not)
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, INIT_STD)
    return model.to(device)


def adamw(torch, model):
    """AdamW with weight decay on matrices and expert stacks, not on norms or embeddings (train/adamw.h)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        embedding = name.startswith("embed_tokens") or name.startswith("lm_head")
        (decay if p.dim() >= 2 and not embedding else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    kwargs = dict(lr=LEARNING_RATE, betas=BETAS, eps=EPS)
    try:  # the multi-tensor implementation: PyTorch's fastest on the CPU
        return torch.optim.AdamW(groups, foreach=True, **kwargs)
    except TypeError:  # a torch without the foreach argument
        return torch.optim.AdamW(groups, **kwargs)


def measure_gemm_tflops(torch, dtype, device):
    n = 8192 if device.type == "cuda" else 1024
    gen = torch.Generator().manual_seed(7)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)

    def gemm():
        torch.matmul(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()

    gemm()
    best = 1e30
    for _ in range(5):
        t = time.perf_counter()
        gemm()
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best / 1e12


def run_row(torch, shape, experts, segment, dtype_name, device, args):
    torch.manual_seed(1)
    model = build(torch, shape, experts, segment, device)
    model.train()
    optimizer = adamw(torch, model)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, shape["vocab"], (shape["batch"], shape["seq"] + 1), generator=gen)
               for _ in range(shape["accumulation"])]
    A = shape["accumulation"]
    params = list(model.parameters())

    def autocast():
        if dtype_name == "f32":
            return torch.autocast(device_type=device.type, enabled=False)
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    def step():
        total = 0.0
        losses = []
        for tokens in batches:
            with autocast():
                loss = model.loss(tokens.to(device))
            (loss / A).backward()
            losses.append(loss.detach())
        norm = torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        if not torch.isfinite(norm):
            raise RuntimeError(f"the gradient norm is {norm.item()}")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        total = torch.stack(losses).mean().item()  # waits for a GPU to finish the step
        return total

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    rss_per_row = reset_peak_rss()
    first_loss = step()
    for _ in range(args.warmup - 1):
        step()
    best, loss, cpu_share = 1e30, None, None
    for _ in range(args.rounds):
        t0, cpu0 = time.perf_counter(), process_cpu_seconds()
        for _ in range(args.steps):
            loss = step()
        wall = time.perf_counter() - t0
        if wall < best:  # the CPU time of the counted round over wall x threads: under 1, other work took cores
            best, cpu_share = wall, (process_cpu_seconds() - cpu0) / (wall * torch.get_num_threads())
    peak_tensor = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    total, active = parameter_counts(shape["layers"], shape["hidden"], shape["ffn"], shape["vocab"], experts)
    tokens = shape["batch"] * shape["seq"] * A
    return dict(first_loss=first_loss, loss=loss, step_ms=1e3 * best / args.steps,
                tokens_per_s=tokens * args.steps / best, peak_tensor_bytes=peak_tensor,
                peak_rss_bytes=peak_rss_bytes(), rss_scope="row" if rss_per_row else "process", cpu_share=cpu_share,
                params_total=total, params_active=active)


def read_safetensors(path):
    """{name: numpy array} from a safetensors file of F32 or F64 tensors."""
    import numpy as np
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": np.float32, "F64": np.float64}.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} is {info['dtype']}; the check reads F32 and F64 "
                             "(lory_init --dtype f32, lory_forward --dtype f64)")
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(info["shape"])
    return out


def check_against_engine(torch, ckpt, ids_path, logits_path, grads_path):
    """This script's model against the engine's on one checkpoint, in f64: the logits and every gradient.

    The engine side: lory_forward --ckpt CKPT --tokens IDS --dtype f64 --logits LOGITS --grads GRADS.
    Returns 0 when the logits and each parameter's gradient agree to 1e-5 of their largest magnitude."""
    import numpy as np
    config = json.load(open(os.path.join(ckpt, "config.json")))
    for key, want in (("routing", "causal_segment"), ("first_segment", "self"), ("tie_word_embeddings", False)):
        if config.get(key, want) != want:
            print(f"pytorch_baseline: --check-engine: {ckpt}/config.json has {key} = {config[key]!r}; "
                  f"this model implements {want!r} only", file=sys.stderr)
            return 2
    ids = np.load(ids_path).astype(np.int64)
    if ids.ndim != 2 or ids.shape[1] < 2:
        print(f"pytorch_baseline: --check-engine: {ids_path} must hold token ids [B, L+1], got shape {ids.shape}",
              file=sys.stderr)
        return 2
    shape = dict(layers=config["num_hidden_layers"], hidden=config["hidden_size"], ffn=config["intermediate_size"],
                 heads=config["num_attention_heads"], vocab=config["vocab_size"], batch=ids.shape[0],
                 seq=ids.shape[1] - 1, accumulation=1, rope_theta=config.get("rope_theta", ROPE_THETA),
                 rms_norm_eps=config.get("rms_norm_eps", RMS_EPS))
    experts = config.get("num_experts", 0)
    model = build(torch, shape, experts, config.get("segment_length", 0), torch.device("cpu")).double()
    weights = read_safetensors(os.path.join(ckpt, "model.safetensors"))

    def engine_name(name):
        return name if name.startswith("lm_head") else "model." + name

    with torch.no_grad():
        for name, p in model.named_parameters():
            if engine_name(name) not in weights:
                print(f"pytorch_baseline: --check-engine: {ckpt} has no tensor {engine_name(name)}", file=sys.stderr)
                return 1
            p.copy_(torch.from_numpy(weights[engine_name(name)].astype(np.float64)))
    unused = set(weights) - {engine_name(n) for n, _ in model.named_parameters()}
    if unused:
        print(f"pytorch_baseline: --check-engine: tensors this model does not have: {sorted(unused)}", file=sys.stderr)
        return 1
    tokens = torch.from_numpy(ids)
    logits = model.logits(tokens[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, shape["vocab"]), tokens[:, 1:].reshape(-1))
    loss.backward()
    engine_grads = read_safetensors(grads_path)
    worst, failed = 0.0, []
    pairs = [("logits", logits.detach().numpy(), np.load(logits_path))]
    pairs += [(engine_name(n), p.grad.numpy(), engine_grads[engine_name(n)]) for n, p in model.named_parameters()]
    for name, ours, theirs in pairs:
        scale = max(float(np.abs(theirs).max()), 1e-30)
        err = float(np.abs(ours - theirs).max()) / scale
        worst = max(worst, err)
        if not err <= 1e-5:
            failed.append(f"{name} (max error {err:.2e} of its largest magnitude {scale:.3g})")
    print(f"pytorch_baseline: loss {loss.item():.8f}; logits and {len(pairs) - 1} gradients against the engine's: "
          f"largest error {worst:.2e} of each tensor's largest magnitude")
    if failed:
        print("pytorch_baseline: differs from the engine: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


def parse_args():
    p = argparse.ArgumentParser(
        prog="pytorch_baseline",
        description="lory_bench_train's model and training step in PyTorch eager: tokens/s, MFU, memory, "
                    "Lory/dense ratio (the same options and JSON row fields).")
    p.add_argument("--preset", default="issue", choices=sorted(PRESETS), help="shape, rows, dtype and device to start from")
    for key, help_text in (("layers", "decoder layers"), ("hidden", "hidden size d"), ("ffn", "FFN width f (of each expert)"),
                           ("heads", "attention heads"), ("vocab", "vocabulary size"), ("batch", "sequences per micro-batch"),
                           ("seq", "tokens per sequence"), ("accumulation", "micro-batches per optimizer step")):
        p.add_argument(f"--{key}", type=positive_int, metavar="N", help=help_text)
    p.add_argument("--experts", type=int_list, metavar="E,...", help="expert counts of the Lory rows (each with every --segment)")
    p.add_argument("--segment", type=int_list, metavar="T,...", help="segment lengths of the Lory rows")
    p.add_argument("--lory", metavar="ExT,...", help="Lory rows as EXPERTSxSEGMENT pairs, instead of --experts x --segment")
    p.add_argument("--dtype", metavar="f32|bf16,...", help="compute dtypes (bf16: autocast); default: the preset's")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: the preset's")
    p.add_argument("--steps", type=positive_int, default=3, help="timed steps per round (default 3)")
    p.add_argument("--warmup", type=positive_int, default=2, help="untimed steps before the rounds (default 2)")
    p.add_argument("--rounds", type=positive_int, default=3, help="timing rounds, the fastest counts (default 3)")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: OMP_NUM_THREADS, else every core)")
    p.add_argument("--peak-tflops", type=float, help="the peak MFU is measured against (default: a GEMM timed now)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--quick", action="store_true", help="tiny shapes and one step: a smoke run, not a measurement")
    p.add_argument("--check-engine", nargs=4, metavar=("CKPT", "IDS", "LOGITS", "GRADS"),
                   help="instead of timing: check that this model is the engine's, in f64, on a checkpoint "
                        "(lory_init --dtype f32) and token ids [B, L+1] (.npy), against the logits and gradients "
                        "of lory_forward --dtype f64 --logits LOGITS --grads GRADS")
    return p.parse_args()


def lory_rows(text):
    rows = []
    for item in (x for x in text.split(",") if x):
        parts = item.split("x")
        try:
            e, t = int(parts[0]), int(parts[1])
            if len(parts) != 2 or e < 1 or t < 1:
                raise ValueError
        except (ValueError, IndexError):
            fail_usage(f"--lory: '{item}' is not EXPERTSxSEGMENT with both >= 1 (e.g. 8x64)")
        rows.append((e, t))
    if not rows:
        fail_usage(f"--lory: no EXPERTSxSEGMENT pair in '{text}'")
    return rows


def main():
    args = parse_args()
    try:
        import torch
    except ImportError:
        print(f"pytorch_baseline: skipped: PyTorch is not installed for {sys.executable}.\n"
              "  Debian 12: apt-get install python3-torch   (then run it with /usr/bin/python3)\n"
              "  or a venv: python3 -m venv .venv && .venv/bin/pip install torch", file=sys.stderr)
        return SKIPPED
    if args.check_engine:
        return check_against_engine(torch, *args.check_engine)

    preset = PRESETS[args.preset]
    shape = {k: (getattr(args, k) if getattr(args, k) is not None else preset[k]) for k in SHAPE_KEYS}
    rows_text = preset["lory"]
    if args.quick:
        shape = {k: QUICK[k] for k in SHAPE_KEYS}
        rows_text = QUICK["lory"]
        args.steps = args.rounds = args.warmup = 1
    if args.lory and (args.experts or args.segment):
        fail_usage("give the Lory rows either as --lory ExT,... or as --experts and --segment, not both")
    variants = [(0, 0)]
    if args.experts or args.segment:
        base = lory_rows(rows_text)
        es = sorted(set(args.experts or [e for e, _ in base]))
        ts = sorted(set(args.segment or [t for _, t in base]))
        if min(es + ts) < 1:
            fail_usage("--experts and --segment need values >= 1")
        variants += [(e, t) for e in es for t in ts]
    else:
        variants += lory_rows(args.lory or rows_text)
    dtypes = [x for x in (args.dtype or preset["dtype"]).split(",") if x]
    for name in dtypes:
        if name not in ("f32", "bf16"):
            fail_usage(f"--dtype: '{name}' is not f32 or bf16")
    if shape["hidden"] % shape["heads"] or (shape["hidden"] // shape["heads"]) % 2:
        fail_usage(f"--hidden {shape['hidden']} must be a multiple of --heads {shape['heads']} with an even quotient (RoPE)")

    device_name = args.device or preset["device"]
    if device_name == "cuda" and not torch.cuda.is_available():
        print("pytorch_baseline: no CUDA GPU is available to this torch: nothing to benchmark "
              "(try --device cpu)", file=sys.stderr)
        return 3
    device = torch.device("cuda:0" if device_name == "cuda" else "cpu")
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    tokens_per_step = shape["batch"] * shape["seq"] * shape["accumulation"]
    flops = model_flops_per_token(shape["layers"], shape["hidden"], shape["ffn"], shape["vocab"], shape["seq"])

    print(f"pytorch_baseline (torch {torch.__version__}, eager) on {device} ({torch.get_num_threads()} threads): "
          f"{shape['layers']} layers, d {shape['hidden']}, f {shape['ffn']}, {shape['heads']} heads, vocab {shape['vocab']}; "
          f"{shape['batch']} x {shape['seq']} tokens x {shape['accumulation']} micro-batches = {tokens_per_step} tokens a step"
          + (" (--quick: tiny shapes, one step; not a measurement)" if args.quick else ""))
    print(f"each row: {args.warmup} warm-up steps, then the best of {args.rounds} rounds of {args.steps} steps; "
          f"torch.optim.AdamW + clip_grad_norm_; attention: "
          + ("F.scaled_dot_product_attention" if hasattr(torch.nn.functional, "scaled_dot_product_attention")
             else "written out (this torch has no scaled_dot_product_attention)"))
    rows, refs = [], []
    for dtype_name in dtypes:
        torch_dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
        gemm = measure_gemm_tflops(torch, torch_dtype, device)
        peak, source = (args.peak_tflops, "--peak-tflops") if args.peak_tflops else (gemm, "measured GEMM")
        refs.append(dict(dtype=dtype_name, gemm_tflops=gemm, peak_tflops=peak, peak_source=source))
        print(f"\n{dtype_name}: reference GEMM {gemm:.4g} TFLOP/s; MFU against {peak:.4g} TFLOP/s ({source})")
        print(f"{'model':<18} {'dtype':<5} {'params M':>9} {'active M':>9} {'step ms':>10} {'tokens/s':>10} {'MFU':>6} "
              f"{'peak GiB':>10} {'RSS GiB':>8} {'CPU':>5} {'/dense':>7} {'goal':<8}")
        dense_tps = None
        for experts, segment in variants:
            name = "dense" if experts == 0 else f"lory E={experts} T={segment}"
            r = run_row(torch, shape, experts, segment, dtype_name, device, args)
            if experts == 0:
                dense_tps = r["tokens_per_s"]
            ratio = r["tokens_per_s"] / dense_tps
            goal = goal_for(experts, segment)
            row = dict(model=name, kind="lory" if experts else "dense", experts=experts,
                       segment=segment if experts else None, dtype=dtype_name,
                       params_total=r["params_total"], params_active=r["params_active"],
                       tokens_per_step=tokens_per_step, step_ms=r["step_ms"], tokens_per_s=r["tokens_per_s"],
                       model_flops_per_token=flops, mfu=flops * r["tokens_per_s"] / (peak * 1e12),
                       peak_tensor_bytes=r["peak_tensor_bytes"], plan_bytes=None,
                       peak_rss_bytes=r["peak_rss_bytes"], rss_scope=r["rss_scope"], cpu_share=r["cpu_share"],
                       first_loss=r["first_loss"], loss=r["loss"], lory_dense_ratio=ratio, goal=goal,
                       goal_met=None if goal is None else ratio >= goal)
            rows.append(row)
            gib = 1024.0 ** 3
            peak_text = "-" if row["peak_tensor_bytes"] is None else f"{row['peak_tensor_bytes'] / gib:.3f}"
            verdict = "" if goal is None else ("ok" if ratio >= goal else "BELOW")
            goal_text = "" if goal is None else f">= {goal:.2f}"
            print(f"{name:<18} {dtype_name:<5} {row['params_total'] / 1e6:9.2f} {row['params_active'] / 1e6:9.2f} "
                  f"{row['step_ms']:10.1f} {row['tokens_per_s']:10.0f} {100 * row['mfu']:5.1f}% {peak_text:>10} "
                  f"{row['peak_rss_bytes'] / gib:8.3f} {100 * row['cpu_share']:4.0f}% {ratio:7.3f} {goal_text:<8} {verdict}",
                  flush=True)
    print("\nMFU: model FLOPs (6 x active matmul parameters + causal attention per token; Lory's expert merge not "
          "counted) x tokens/s / peak.\npeak GiB: CUDA tensor memory (PyTorch counts none on the CPU); CPU: CPU time "
          "of the timed round / (wall x threads), well under 100% when other work shared the cores;\n"
          "/dense: tokens/s over the dense row's.")
    if args.json:
        report = dict(program="pytorch_baseline", engine="pytorch", torch_version=torch.__version__, device=str(device),
                      threads=torch.get_num_threads(), quick=args.quick, shape=dict(shape, tokens_per_step=tokens_per_step),
                      timing=dict(warmup_steps=args.warmup, steps_per_round=args.steps, rounds=args.rounds,
                                  statistic="best round"),
                      references=refs, rows=rows)
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
        os.replace(tmp, args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
