"""Command line for RLVR runs: ``python -m hdai_lessons.rlvr.train --scale full --loss lpo_fwd --run-dir runs/x``.

Several GPUs: ``accelerate launch [--multi_gpu --num_processes N] [--mixed_precision bf16] -m
hdai_lessons.rlvr.train --scale full ...``. Each process samples its own prompts; DDP averages the
gradients. A run directory that already holds a checkpoint is resumed (model, optimizer, RNGs,
metrics history), so re-running the same command after a crash continues where it stopped.
Metrics go to ``<run-dir>/metrics.jsonl`` (one JSON line per iteration) and the final held-out
pass@k to ``<run-dir>/eval.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..seeding import seed_everything
from .full import build_run
from .losses import LOSS_NAMES
from .trainer import RLVRTrainer, sft


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m hdai_lessons.rlvr.train", description=__doc__.split("\n")[0])
    p.add_argument("--scale", default=None, help="smoke | toy | full (default $HDAI_SCALE or toy)")
    p.add_argument("--loss", default="lpo_fwd", choices=LOSS_NAMES, help="RLVR loss")
    p.add_argument("--run-dir", required=True, help="checkpoints + metrics; resumed if it holds a checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="RLVR iterations (default: the scale's)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--inner-epochs", type=int, default=None, help="E, passes over each rollout batch")
    p.add_argument("--prompts-per-step", type=int, default=None)
    p.add_argument("--K", type=int, default=None, help="responses per prompt")
    p.add_argument("--max-new-tokens", type=int, default=None)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Build the run for the scale, warm up if configured, train with resume, evaluate; return the eval."""
    from accelerate import Accelerator

    args = parse_args(argv)
    overrides = {k: v for k, v in {"steps": args.steps, "lr": args.lr, "inner_epochs": args.inner_epochs,
                                    "prompts_per_step": args.prompts_per_step, "K": args.K,
                                    "max_new_tokens": args.max_new_tokens}.items() if v is not None}
    seed_everything(args.seed)
    run = build_run(args.scale, loss=args.loss, seed=args.seed, **overrides)
    accelerator = Accelerator()
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run.model.to(accelerator.device)
    fresh = not (run_dir / "latest.json").exists()
    if fresh and run.cfg.sft_steps:
        sft(run.model, run.tokenizer, run.train, steps=run.cfg.sft_steps, batch_size=16, lr=3e-3,
            seed=args.seed, chat_template=run.cfg.rl.chat_template)
    trainer = RLVRTrainer(run.model, run.tokenizer, run.task, run.train, run.loss, run.cfg.rl,
                          accelerator=accelerator, run_dir=run_dir)
    metrics_file = run_dir / "metrics.jsonl"

    def log(m: dict) -> None:
        if accelerator.is_main_process:
            with open(metrics_file, "a") as f:
                f.write(json.dumps(m) + "\n")
            print(" ".join(f"{k}={v:.4g}" for k, v in m.items()), flush=True)

    trainer.train(callback=log, desc=f"RLVR {args.loss}")
    result = trainer.evaluate(run.held_out, n_samples=run.cfg.eval_samples, ks=run.cfg.eval_ks,
                              temperature=run.cfg.eval_temperature)
    if accelerator.is_main_process:
        (run_dir / "eval.json").write_text(json.dumps(result, indent=2))
        print("held-out:", json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
