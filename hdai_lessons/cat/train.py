"""Command line for CAT-weighted RL: ``python -m hdai_lessons.cat.train --scale full --arm cat-pass8 --run-dir runs/x``.

Several GPUs: ``accelerate launch [--multi_gpu --num_processes N] [--mixed_precision bf16] -m
hdai_lessons.cat.train --scale full ...``. A run directory that already holds a checkpoint is resumed.
Metrics go to ``<run-dir>/metrics.jsonl`` and the held-out pass@k / maj@k to ``<run-dir>/eval.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..seeding import seed_everything
from .full import FULL_ARMS, CATEvalConfig, build_cat_run, evaluate_run, make_trainer


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m hdai_lessons.cat.train", description=__doc__.split("\n")[0])
    p.add_argument("--scale", default=None, help="smoke | toy | full (default $HDAI_SCALE or toy)")
    p.add_argument("--arm", default="cat-pass8", choices=sorted(FULL_ARMS), help="GRPO or a CAT weight")
    p.add_argument("--run-dir", required=True, help="checkpoints + metrics; resumed if it holds a checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="RLVR iterations (default: the scale's)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--K", type=int, default=None, help="rollouts per prompt")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Build the run, warm up if configured (fresh runs only), train with resume, evaluate; return the eval."""
    from accelerate import Accelerator

    from ..rlvr.trainer import sft

    args = parse_args(argv)
    overrides = {k: v for k, v in {"steps": args.steps, "lr": args.lr, "K": args.K}.items() if v is not None}
    seed_everything(args.seed)
    run = build_cat_run(args.scale, seed=args.seed, **overrides)
    accelerator = Accelerator()
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run.model.to(accelerator.device)
    if not (run_dir / "latest.json").exists() and run.cfg.sft_steps:
        sft(run.model, run.tokenizer, run.train, steps=run.cfg.sft_steps, batch_size=16, lr=3e-3, seed=args.seed,
            chat_template=run.cfg.rl.chat_template)
    trainer = make_trainer(run, args.arm, accelerator=accelerator, run_dir=run_dir)

    def log(m: dict) -> None:
        if accelerator.is_main_process:
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(m) + "\n")

    trainer.train(callback=log, desc=f"CAT {args.arm}")
    result = evaluate_run(trainer, run, CATEvalConfig.for_scale(args.scale), seed=args.seed)
    if accelerator.is_main_process:
        (run_dir / "eval.json").write_text(json.dumps({k: v for k, v in result.items() if k != "p_hat"}, indent=2))
        print("held-out:", json.dumps({k: v for k, v in result.items() if k != "p_hat"}), flush=True)
    return result


if __name__ == "__main__":
    main()
