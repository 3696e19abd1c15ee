"""Command line for RLVR runs: ``python -m hdai_lessons.rlvr.launch --scale full --loss lpo_fwd --run-dir runs/x``.

Several GPUs: ``accelerate launch [--multi_gpu --num_processes N] [--mixed_precision bf16] -m
hdai_lessons.rlvr.launch --scale full ...``. Each process samples its own prompts; DDP averages the
gradients. A run directory that already holds a checkpoint is resumed (model, optimizer, RNGs,
metrics history), so re-running the same command after a crash continues where it stopped.
Metrics go to ``<run-dir>/metrics.jsonl`` (one JSON line per iteration) and the final held-out
pass@k to ``<run-dir>/eval.json``.
"""
from __future__ import annotations

import argparse
import json

from hdai_lessons.core.config import add_config_arguments, config_overrides
from hdai_lessons.core.seeding import seed_everything
from hdai_lessons.lm.rl_trainer import RLVRConfig, train_logged
from hdai_lessons.rlvr.full import build_run, make_trainer, start_launch
from hdai_lessons.rlvr.losses import LOSS_NAMES


LAUNCHER_FLAGS = ("seed",)   # RLVRConfig fields the launcher sets itself (--seed seeds the whole run)


def parse_args(argv=None) -> argparse.Namespace:
    """The run's identity (scale, loss, run dir, seed) and every ``RLVRConfig`` field as an optional flag.

    Lesson 01.4 (the full-scale command line); Algorithm 1 of LPO's settings as flags.
    """
    p = argparse.ArgumentParser(prog="python -m hdai_lessons.rlvr.launch", description=__doc__.split("\n")[0])
    p.add_argument("--scale", default=None, help="smoke | toy | full (default $HDAI_SCALE or toy)")
    p.add_argument("--loss", default="lpo_fwd", choices=LOSS_NAMES, help="RLVR loss")
    p.add_argument("--run-dir", required=True, help="checkpoints + metrics; resumed if it holds a checkpoint")
    p.add_argument("--seed", type=int, default=0, help="seed of the model init, problems, prompts and sampling")
    add_config_arguments(p, RLVRConfig, exclude=LAUNCHER_FLAGS)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Build the run for the scale, warm up a fresh run if configured, train with resume, evaluate; return the eval.

    Lesson 01.4; Algorithm 1 of LPO at full scale, then held-out pass@k.
    """
    args = parse_args(argv)
    seed_everything(args.seed)
    run = build_run(args.scale, loss=args.loss, seed=args.seed, **config_overrides(args, RLVRConfig, exclude=LAUNCHER_FLAGS))
    accelerator, run_dir = start_launch(run, args.run_dir, seed=args.seed)
    trainer = make_trainer(run, run_dir=run_dir, accelerator=accelerator)
    train_logged(trainer, run_dir / "metrics.jsonl", desc=f"RLVR {args.loss}", echo=True)
    result = trainer.evaluate(run.held_out, n_samples=run.cfg.eval_samples, ks=run.cfg.eval_ks,
                              temperature=run.cfg.eval_temperature)
    if accelerator.is_main_process:
        (run_dir / "eval.json").write_text(json.dumps(result, indent=2))
        print("held-out:", json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
