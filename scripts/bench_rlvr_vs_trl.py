"""Time one RLVR iteration (rollout + update) of our trainer against TRL's ``GRPOTrainer``.

Same tiny ``Qwen2ForCausalLM`` config and initial weights, same char tokenizer, same prompts, same
K, response length, learning rate and loss family (GRPO, one update per rollout batch), in one
process, one torch thread by default. Prints seconds per iteration for both and the ratio.

    .venv/bin/python scripts/bench_rlvr_vs_trl.py [--steps 6] [--prompts 16] [--K 8] [--max-new-tokens 8]

Needs TRL (``pip install trl==1.16.0``, the ``bench`` extra); exits with a clear message when absent.
Both sample with EOS allowed up to the same ``max_new_tokens``; the randomly-initialised model rarely
emits EOS, so both generate close to the full length (the mean lengths are printed to confirm).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=6, help="timed iterations (after one warm-up iteration)")
    p.add_argument("--prompts", type=int, default=16, help="prompts per iteration (B)")
    p.add_argument("--K", type=int, default=8, help="responses per prompt")
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--scale", default="toy", help="tiny-model size rung: smoke | toy | full")
    args = p.parse_args(argv)

    try:
        import trl
        from trl import GRPOConfig, GRPOTrainer
    except ImportError:
        print("TRL is not installed: this benchmark compares against trl.GRPOTrainer.\n"
              "Install it with:  .venv/bin/pip install 'trl==1.16.0'   (or pip install -e '.[bench]')",
              file=sys.stderr)
        return 2
    import random

    import torch
    from datasets import Dataset

    from hdai_lessons.lm import TinyLMConfig, build_tiny_lm
    from hdai_lessons.rlvr.losses import LossConfig
    from hdai_lessons.lm.rl_trainer import RLVRConfig
    from hdai_lessons.rlvr.trainer import RLVRTrainer
    from hdai_lessons.tasks import ArithmeticTask

    os.environ.setdefault("HDAI_PROGRESS", "0")
    torch.set_num_threads(args.threads)
    task = ArithmeticTask(1, 2, "+-")
    problems = task.sample(args.prompts * (args.steps + 1), random.Random(0))
    answers = {p.prompt: p for p in problems}
    n_steps = args.steps + 1
    lm_cfg = TinyLMConfig.for_scale(args.scale)

    # ---------------------------------------------------------------- ours
    model, tok = build_tiny_lm(lm_cfg, seed=0)
    torch.manual_seed(0)
    cfg = RLVRConfig(steps=n_steps, prompts_per_step=args.prompts, K=args.K, inner_epochs=1, lr=1e-4,
                     max_new_tokens=args.max_new_tokens, seed=0, max_grad_norm=1.0)
    ours = RLVRTrainer(model, tok, task, problems, LossConfig(name="grpo", agg="seq_mean"), cfg)
    times, lens = [], []
    for _ in range(n_steps):
        t0 = time.perf_counter()
        m = ours.step()
        times.append(time.perf_counter() - t0)
        lens.append(m["resp_len"])
    ours_s = sum(times[1:]) / len(times[1:])
    ours_len = sum(lens[1:]) / len(lens[1:])

    # ---------------------------------------------------------------- TRL
    from transformers import TrainerCallback

    model, tok = build_tiny_lm(lm_cfg, seed=0)

    def reward_fn(prompts, completions, **kwargs):
        return [task.reward(answers[p], c) for p, c in zip(prompts, completions)]

    class Timer(TrainerCallback):
        def __init__(self):
            self.stamps = []

        def on_step_begin(self, a, s, c, **kw):
            self.stamps.append(("begin", time.perf_counter()))

        def on_step_end(self, a, s, c, **kw):
            self.stamps.append(("end", time.perf_counter()))

    timer = Timer()
    completion_lens = []

    def len_reward(completion_ids=None, **kwargs):  # weight 0: only records lengths
        if completion_ids is not None:
            completion_lens.extend(len(c) for c in completion_ids)
        return [0.0] * len(kwargs.get("prompts", completion_ids or []))

    with tempfile.TemporaryDirectory() as out:
        targs = GRPOConfig(
            output_dir=out, use_cpu=True, bf16=False, report_to="none", save_strategy="no", logging_steps=1000,
            per_device_train_batch_size=args.prompts * args.K, num_generations=args.K,
            max_completion_length=args.max_new_tokens, learning_rate=1e-4, max_steps=n_steps, num_iterations=1,
            temperature=1.0, beta=0.0, epsilon=0.2, loss_type="grpo", scale_rewards="group", max_grad_norm=1.0,
            seed=0, dataloader_num_workers=0, disable_tqdm=True, reward_weights=[1.0, 0.0],
        )
        ds = Dataset.from_dict({"prompt": [p.prompt for p in problems]})
        trainer = GRPOTrainer(model=model, reward_funcs=[reward_fn, len_reward], args=targs, train_dataset=ds,
                              processing_class=tok, callbacks=[timer])
        trainer.train()
    begins = [t for k, t in timer.stamps if k == "begin"]
    ends = [t for k, t in timer.stamps if k == "end"]
    trl_times = [e - b for b, e in zip(begins, ends)]
    trl_s = sum(trl_times[1:]) / len(trl_times[1:])
    trl_len = sum(completion_lens) / max(1, len(completion_lens))

    print(f"tiny Qwen2 {lm_cfg}, B={args.prompts} prompts × K={args.K}, ≤{args.max_new_tokens} new tokens, "
          f"{args.threads} thread(s), torch {torch.__version__}, trl {trl.__version__}")
    print(f"ours (hdai_lessons.rlvr.RLVRTrainer): {ours_s * 1000:8.1f} ms / iteration   (mean response {ours_len:.1f} tokens)")
    print(f"TRL  (trl.GRPOTrainer)              : {trl_s * 1000:8.1f} ms / iteration   (mean response {trl_len:.1f} tokens)")
    print(f"ratio TRL / ours: {trl_s / ours_s:.2f}x  ({'ours faster' if ours_s < trl_s else 'TRL faster'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
