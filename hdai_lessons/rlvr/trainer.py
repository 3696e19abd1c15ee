"""Module 01's RLVR trainer: the group-RL loop of ``lm.rl_trainer`` with any loss of ``rlvr.losses``.

One iteration is Algorithm 1 of LPO (arXiv 2605.06139); GRPO is the same loop with another loss
(``LossConfig(name="grpo")``). Lessons 01.3 (tiny LM) and 01.4 (full scale) train with it.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch

from hdai_lessons.lm.rl_trainer import GroupRLTrainer, RLVRConfig
from hdai_lessons.rlvr.losses import LossConfig, rlvr_loss
from hdai_lessons.tasks.base import Problem, Task

__all__ = ["RLVRConfig", "RLVRTrainer"]


class RLVRTrainer(GroupRLTrainer):
    """RLVR with any loss of ``hdai_lessons.rlvr.losses`` on any ``transformers`` causal LM.

    Args:
        model, tokenizer, task, train_problems, cfg, accelerator, run_dir: as ``GroupRLTrainer``.
        loss_cfg: ``LossConfig`` (GRPO, LPO-fwd, LPO-rev, pointwise, …), saved with each checkpoint.

    Lessons 01.3 and 01.4 (and 02.3, 02.4 through ``CATTrainer``); Algorithm 1 of LPO.
    """

    def __init__(self, model, tokenizer, task: Task, train_problems: Sequence[Problem], loss_cfg: LossConfig,
                 cfg: "RLVRConfig | None" = None, accelerator=None, run_dir: "str | Path | None" = None):
        self.loss_cfg = loss_cfg
        super().__init__(model, tokenizer, task, train_problems, cfg, accelerator, run_dir)

    def compute_loss(self, logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor,
                     extras: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """``rlvr_loss`` (GRPO eq. 1 / LPO eqs. 8–9 …) of one chunk: logp, old_logp, mask ``(b, K, T)``, rewards ``(b, K)``."""
        return rlvr_loss(logp, old_logp, mask, rewards, self.loss_cfg)

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"loss_cfg": asdict(self.loss_cfg)}
