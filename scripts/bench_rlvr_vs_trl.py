"""Time one RLVR iteration (rollout + update) of our trainer against TRL's ``GRPOTrainer``, fairly.

Equal work on both sides: the same tiny ``Qwen2ForCausalLM`` and initial weights, the same char
tokenizer and prompts, the same B prompts × K responses, response limit, learning rate, AdamW, gradient
clip and loss family (GRPO: group-normalised advantages, clipped ratio, sequence mean; one on-policy
update per rollout batch, no reference model), and the same gradient-checkpointing setting.

    .venv/bin/python scripts/bench_rlvr_vs_trl.py --warm [--pairs 20] [--prompts 16] [--K 8]

- ``--warm`` starts both from the course's shipped SFT checkpoint (``data/lm/arith_warm.safetensors``,
  lesson 01.3) on its arithmetic task, so rewards are not all zero and the update really moves the
  weights (the mean reward is printed). Without it both start from a random model that scores 0
  everywhere (every advantage is 0: both updates are no-ops).
- The two trainers run **interleaved** in one process: TRL's ``train()`` drives its loop and a callback
  runs one of our iterations beside each of TRL's (before it on odd pairs, after it on even ones), so
  machine load hits both alike. Times are process CPU time (one torch thread by default; robust to
  other processes sharing the CPU) and wall clock; the first ``--warmup`` pairs are dropped.
- Each setting of gradient checkpointing (off, on: TRL's ``GRPOConfig`` default) is run on both sides.
  For each: min and median seconds per iteration, the median of the per-pair ratios, and where the
  time goes (generation / scoring / forward+loss / backward / optimiser / other).

The last line is ``ratio TRL / ours: X.XXx``: the median over interleaved pairs of TRL's CPU time over
ours, with gradient checkpointing off on both sides (``--last-setting on`` reports the other).

Needs TRL (``pip install trl==1.16.0``, the ``bench`` extra); exits with a clear message when absent.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager

BUCKETS = ("generation", "scoring", "forward+loss", "backward", "optimiser")


class Clock:
    """Per-side, per-bucket CPU-time accumulator; the innermost open bucket gets the time."""

    def __init__(self):
        self.side = None
        self.acc: dict = defaultdict(float)
        self._stack: list = []

    @contextmanager
    def bucket(self, name):
        if self._stack:                       # nested: only the outermost bucket counts
            yield
            return
        self._stack.append(name)
        t0 = time.process_time()
        try:
            yield
        finally:
            self.acc[(self.side, name)] += time.process_time() - t0
            self._stack.pop()

    def wrap(self, fn, name):
        def timed(*a, **k):
            with self.bucket(name):
                return fn(*a, **k)
        timed.__wrapped__ = fn
        return timed

    def take(self, side):
        out = {b: self.acc.pop((side, b), 0.0) for b in BUCKETS}
        return out


def run_setting(args, checkpointing: bool, clock: Clock):
    """Interleaved pairs for one gradient-checkpointing setting: lists of per-iteration records per side."""
    import random

    import torch
    from accelerate import Accelerator
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import hdai_lessons.lm.rl_trainer as rl_trainer
    from hdai_lessons.lm import TinyLMConfig, build_tiny_lm
    from hdai_lessons.lm.rl_trainer import RLVRConfig
    from hdai_lessons.rlvr.losses import LossConfig
    from hdai_lessons.rlvr.trainer import RLVRTrainer
    from hdai_lessons.tasks import ArithmeticTask

    n_iter = args.warmup + args.pairs

    def fresh_model():
        if args.warm:
            from hdai_lessons.lm.pretrained import load_warm_lm
            m, t, _ = load_warm_lm()
            return m, t
        return build_tiny_lm(TinyLMConfig.for_scale(args.scale), seed=0)

    if args.warm:
        from hdai_lessons.lm.pretrained import warm_problem_split, warm_task
        task = warm_task()
        problems = warm_problem_split(0)[0]
    else:
        task = ArithmeticTask(1, 2, "+-")
        problems = task.sample(4000, random.Random(0))
    by_prompt = {p.prompt: p for p in problems}

    class TimedTask:                          # our verifier calls go to the "scoring" bucket
        def __init__(self, t):
            self.t = t

        def reward(self, p, c):
            with clock.bucket("scoring"):
                return self.t.reward(p, c)

    # ------------------------------------------------------------------ ours
    torch.manual_seed(0)
    model, tok = fresh_model()
    cfg_kw = dict(steps=n_iter, prompts_per_step=args.prompts, K=args.K, inner_epochs=1, lr=args.lr,
                  max_new_tokens=args.max_new_tokens, seed=0, max_grad_norm=1.0)
    if checkpointing:
        cfg_kw["gradient_checkpointing"] = True
    ours = RLVRTrainer(model, tok, TimedTask(task), problems, LossConfig(name="grpo", agg="seq_mean"),
                       RLVRConfig(**cfg_kw), accelerator=Accelerator(cpu=True))
    rl_trainer.sample_groups = clock.wrap(rl_trainer.sample_groups.__dict__.get("__wrapped__", rl_trainer.sample_groups),
                                          "generation")
    ours._logp = clock.wrap(ours._logp, "forward+loss")
    ours.compute_loss = clock.wrap(ours.compute_loss, "forward+loss")

    # ------------------------------------------------------------------ TRL
    torch.manual_seed(0)
    tmodel, ttok = fresh_model()
    ttok.padding_side = "left"

    records = {"ours": [], "trl": []}
    lens = {"ours": [], "trl": []}
    rewards = {"ours": [], "trl": []}

    def reward_fn(prompts, completions, **kwargs):
        r = [task.reward(by_prompt[p], c) for p, c in zip(prompts, completions)]
        rewards["trl"].append(sum(r) / max(1, len(r)))
        return r

    def ours_step():
        clock.side = "ours"
        c0, w0 = time.process_time(), time.perf_counter()
        m = ours.step()
        rec = {"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0, **clock.take("ours")}
        records["ours"].append(rec)
        lens["ours"].append(m["resp_len"])
        rewards["ours"].append(m["reward"])

    class Interleave(TrainerCallback):
        def __init__(self):
            self.i = 0
            self.t = None

        def on_step_begin(self, a, s, c, **kw):
            if self.i % 2 == 1:
                ours_step()
            clock.side = "trl"
            self.t = (time.process_time(), time.perf_counter())

        def on_step_end(self, a, s, c, **kw):
            rec = {"cpu": time.process_time() - self.t[0], "wall": time.perf_counter() - self.t[1], **clock.take("trl")}
            records["trl"].append(rec)
            if self.i % 2 == 0:
                ours_step()
            self.i += 1

    with tempfile.TemporaryDirectory() as out:
        targs = GRPOConfig(
            output_dir=out, use_cpu=True, bf16=False, report_to="none", save_strategy="no", logging_steps=10_000,
            per_device_train_batch_size=args.prompts * args.K, num_generations=args.K,
            max_completion_length=args.max_new_tokens, learning_rate=args.lr, max_steps=n_iter, num_iterations=1,
            temperature=1.0, top_p=1.0, top_k=0, beta=0.0, epsilon=0.2, loss_type="grpo", scale_rewards="group",
            max_grad_norm=1.0, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, seed=0,
            dataloader_num_workers=0, disable_tqdm=True, gradient_checkpointing=checkpointing,
        )
        ds = Dataset.from_dict({"prompt": [problems[i % len(problems)].prompt for i in range(args.prompts * n_iter * 2)]})
        trainer = GRPOTrainer(model=tmodel, reward_funcs=[reward_fn], args=targs, train_dataset=ds,
                              processing_class=ttok, callbacks=[Interleave()])
        from transformers.trainer_callback import PrinterCallback
        trainer.remove_callback(PrinterCallback)          # no log dict printed at the end of train()
        trainer._generate_single_turn = clock.wrap(trainer._generate_single_turn, "generation")
        trainer._calculate_rewards = clock.wrap(trainer._calculate_rewards, "scoring")
        trainer.compute_loss = clock.wrap(trainer.compute_loss, "forward+loss")
        completion_lens = []
        orig_gen = trainer._generate

        def gen_with_lengths(prompts):
            out_ = orig_gen(prompts)
            completion_lens.append(sum(len(c) for c in out_[1]) / max(1, len(out_[1])))
            return out_
        trainer._generate = gen_with_lengths
        trainer.train()
        lens["trl"] = completion_lens
    return records, lens, rewards


def patch_shared(clock: Clock):
    """Backward and optimiser hooks shared by both sides (same classes: accelerate and torch AdamW)."""
    import torch
    from accelerate import Accelerator

    Accelerator.backward = clock.wrap(Accelerator.backward, "backward")
    Accelerator.clip_grad_norm_ = clock.wrap(Accelerator.clip_grad_norm_, "optimiser")
    torch.optim.AdamW.step = clock.wrap(torch.optim.AdamW.step, "optimiser")


def summarise(name, records, lens, rewards, warmup):
    ours, trl = records["ours"][warmup:], records["trl"][warmup:]
    n = min(len(ours), len(trl))
    ours, trl = ours[:n], trl[:n]
    ratios = [t["cpu"] / o["cpu"] for o, t in zip(ours, trl)]
    wall_ratios = [t["wall"] / o["wall"] for o, t in zip(ours, trl)]
    print(f"\n== gradient checkpointing {name} on both sides: {n} interleaved pairs (after {warmup} warm-up) ==")
    for side, rec in (("ours", ours), ("TRL ", trl)):
        cpu = [r["cpu"] * 1000 for r in rec]
        wall = [r["wall"] * 1000 for r in rec]
        tot = statistics.mean(r["cpu"] for r in rec)
        parts = {b: statistics.mean(r[b] for r in rec) for b in BUCKETS}
        other = tot - sum(parts.values())
        key = "ours" if side == "ours" else "trl"
        ln = lens[key][warmup:] if len(lens[key]) > warmup else lens[key]
        rw = rewards[key][warmup:] if len(rewards[key]) > warmup else rewards[key]
        print(f"{side}: CPU ms/iter min {min(cpu):7.1f} median {statistics.median(cpu):7.1f} | "
              f"wall min {min(wall):7.1f} median {statistics.median(wall):7.1f} | "
              f"mean response {statistics.mean(ln):.2f} tok, mean reward {statistics.mean(rw) if rw else float('nan'):.3f}")
        print("      breakdown (mean CPU ms): " + ", ".join(f"{b} {parts[b] * 1000:.1f}" for b in BUCKETS)
              + f", other {other * 1000:.1f}")
    print(f"ratio of medians (CPU) {statistics.median([r['cpu'] for r in trl]) / statistics.median([r['cpu'] for r in ours]):.2f}x, "
          f"of mins {min(r['cpu'] for r in trl) / min(r['cpu'] for r in ours):.2f}x, "
          f"median of pair ratios: CPU {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f}), "
          f"wall {statistics.median(wall_ratios):.2f}x")
    return statistics.median(ratios)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warm", action="store_true", help="start both from the shipped SFT checkpoint (non-zero rewards)")
    p.add_argument("--pairs", "--steps", type=int, default=20, help="timed interleaved pairs per setting")
    p.add_argument("--warmup", type=int, default=3, help="pairs dropped at the start of each setting")
    p.add_argument("--prompts", type=int, default=16, help="prompts per iteration (B)")
    p.add_argument("--K", type=int, default=8, help="responses per prompt")
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--scale", default="toy", help="random-model size rung without --warm: smoke | toy | full")
    p.add_argument("--settings", default="off,on", help="gradient-checkpointing settings to run (off, on)")
    p.add_argument("--last-setting", default="off", help="the setting whose ratio the last line reports")
    args = p.parse_args(argv)

    try:
        import trl
    except ImportError:
        print("TRL is not installed: this benchmark compares against trl.GRPOTrainer.\n"
              "Install it with:  .venv/bin/pip install 'trl==1.16.0'   (or pip install -e '.[bench]')",
              file=sys.stderr)
        return 2
    import torch
    import transformers

    os.environ.setdefault("HDAI_PROGRESS", "0")
    torch.set_num_threads(args.threads)
    import logging
    import warnings
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)

    clock = Clock()
    patch_shared(clock)
    print(f"{'warm SFT checkpoint (lesson 01.3)' if args.warm else 'random init ' + args.scale}, "
          f"B={args.prompts} prompts × K={args.K}, ≤{args.max_new_tokens} new tokens, lr {args.lr}, "
          f"{args.threads} thread(s), torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")
    ratio = {}
    for s in args.settings.split(","):
        recs, lens, rewards = run_setting(args, s == "on", clock)
        ratio[s] = summarise(s, recs, lens, rewards, args.warmup)
    last = args.last_setting if args.last_setting in ratio else next(iter(ratio))
    print(f"\n(last line: gradient checkpointing {last} on both sides; median of interleaved pairs, process CPU time)")
    print(f"ratio TRL / ours: {ratio[last]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
