"""Command line for CAT-weighted RL: ``python -m hdai_lessons.cat.launch --scale full --arm cat-pass8 --run-dir runs/x``.

Several GPUs: ``accelerate launch [--multi_gpu --num_processes N] [--mixed_precision bf16] -m
hdai_lessons.cat.launch --scale full ...``. A run directory that already holds a checkpoint is resumed.
Metrics go to ``<run-dir>/metrics.jsonl`` and the held-out pass@k / maj@k to ``<run-dir>/eval.json``.
"""
from __future__ import annotations

import argparse
import json

from hdai_lessons.cat.full import FULL_ARMS, CATEvalConfig, build_cat_run, evaluate_run, make_trainer
from hdai_lessons.core.config import add_config_arguments, config_overrides
from hdai_lessons.core.seeding import seed_everything
from hdai_lessons.lm.rl_trainer import RLVRConfig, train_logged
from hdai_lessons.rlvr.full import start_launch


LAUNCHER_FLAGS = ("seed",)   # RLVRConfig fields the launcher sets itself (--seed seeds the whole run)


def parse_args(argv=None) -> argparse.Namespace:
    """The run's identity (scale, arm, run dir, seed) and every ``RLVRConfig`` field as an optional flag.

    Lesson 02.4 (the full-scale command line); no paper equation.
    """
    p = argparse.ArgumentParser(prog="python -m hdai_lessons.cat.launch", description=__doc__.split("\n")[0])
    p.add_argument("--scale", default=None, help="smoke | toy | full (default $HDAI_SCALE or toy)")
    p.add_argument("--arm", default="cat-pass8", choices=sorted(FULL_ARMS), help="GRPO or a CAT weight")
    p.add_argument("--run-dir", required=True, help="checkpoints + metrics; resumed if it holds a checkpoint")
    p.add_argument("--seed", type=int, default=0, help="seed of the model init, problems, prompts and sampling")
    add_config_arguments(p, RLVRConfig, exclude=LAUNCHER_FLAGS)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Build the run, warm up a fresh run if configured, train with resume, evaluate; return the eval.

    Lesson 02.4; CAT's RL update at full scale, then CAT's evaluation (pass@k, maj@k).
    """
    args = parse_args(argv)
    seed_everything(args.seed)
    run = build_cat_run(args.scale, seed=args.seed, **config_overrides(args, RLVRConfig, exclude=LAUNCHER_FLAGS))
    accelerator, run_dir = start_launch(run, args.run_dir, seed=args.seed)
    trainer = make_trainer(run, args.arm, accelerator=accelerator, run_dir=run_dir)
    train_logged(trainer, run_dir / "metrics.jsonl", desc=f"CAT {args.arm}", echo=False)
    result = evaluate_run(trainer, run, CATEvalConfig.for_scale(args.scale), seed=args.seed)
    if accelerator.is_main_process:
        (run_dir / "eval.json").write_text(json.dumps({k: v for k, v in result.items() if k != "p_hat"}, indent=2))
        print("held-out:", json.dumps({k: v for k, v in result.items() if k != "p_hat"}), flush=True)
    return result


if __name__ == "__main__":
    main()
