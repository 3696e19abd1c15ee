"""The group-RL loop on a causal LM: K responses per prompt, an exact verifier, E inner updates.

One iteration (Algorithm 1 of LPO; GRPO is the same loop with another loss):

1. rollout — draw B prompts, sample K responses each with π_b = π_θ (``lm.sampling.sample_groups``);
2. reward — score every response with the task's verifier: ``R`` is ``(B, K)``;
3. π_b log-probs — ``old_logp (B, K, T)`` without grad (on a single on-policy update it is the
   detached log-prob of that very update, so the ratio is exactly 1 there);
4. update — ``inner_epochs`` (E) passes over the batch, in ``minibatches`` chunks of prompts; each
   chunk: ``logp`` with grad, the subclass's ``compute_loss`` (module 01: ``rlvr_loss``), backward,
   gradient clip, AdamW step. E · minibatches > 1 makes later updates off-policy (where LPO-rev and
   GRPO part ways).

Memory and speed (the same code at every scale): a chunk is forwarded in micro-batches of
``micro_batch_prompts`` prompts whose gradients accumulate into the chunk's one optimiser step
(exactly the chunk's gradient, see ``_backward_chunk``); logits are computed at response positions
only; each prompt is run once per group and its KV cache shared by its K responses, in sampling
and in the update (``lm.sampling.prefill_shared``); optional activation checkpointing; bf16
autocast on CUDA.

The trainer takes the tiny ``Qwen2ForCausalLM`` or any ``AutoModelForCausalLM`` + tokenizer, runs
under ``accelerate`` (one CPU, one GPU, or ``accelerate launch`` on several — each process samples
its own prompts; the gradients are averaged over processes once per update) and checkpoints
atomically via ``hdai_lessons.core.checkpoint`` (model + optimizer + RNG + history), so ``train``
resumes where a killed run stopped.

SFT warm-up is in ``lm.sft``; held-out pass@k in ``lm.evaluation``.
"""
from __future__ import annotations

import contextlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from hdai_lessons.core.checkpoint import checkpoint_extra, latest_checkpoint, load_checkpoint, save_checkpoint
from hdai_lessons.core.progress import progress
from hdai_lessons.lm.evaluation import evaluate_pass_at_k
from hdai_lessons.lm.sampling import format_prompts, sample_groups, sequence_logprobs
from hdai_lessons.tasks.base import Problem, Task


@dataclass
class RLVRConfig:
    """Settings of an RLVR run (every field is a CLI flag of ``python -m hdai_lessons.rlvr.launch``)."""

    steps: int = 40
    """RLVR iterations (one rollout batch + its inner updates each)."""
    prompts_per_step: int = 16
    """B, prompts per rollout batch (per process under ``accelerate launch``)."""
    K: int = 8
    """Responses sampled per prompt (the group size)."""
    inner_epochs: int = 1
    """E, passes over each rollout batch (E > 1: off-policy updates)."""
    minibatches: int = 1
    """Gradient steps per pass (prompts split into this many chunks)."""
    optimizer: str = "adamw"
    """"adamw" (the paper's choice) or "sgd" (plain gradient steps: with ``max_grad_norm`` the step
    length is at most ``lr · max_grad_norm``, which a small, sharp model can need — see lesson 01.3)."""
    lr: float = 1e-3
    """Learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay (the paper: 0.1)."""
    betas: tuple = (0.9, 0.999)
    """AdamW betas."""
    warmup_updates: int = 0
    """Linear learning-rate warm-up over this many optimizer updates (Adam's first steps are sign-like
    and large; a short warm-up keeps a small model from being knocked off its SFT solution)."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip (≤ 0 disables)."""
    max_new_tokens: int = 8
    """T, response length limit."""
    temperature: float = 1.0
    """Rollout temperature (the paper: 1.0); the ratios use the same temperature."""
    top_p: float = 1.0
    """Rollout nucleus mass."""
    chat_template: bool = False
    """Wrap prompts with the tokenizer's chat template (instruct models)."""
    seed: int = 0
    """Seed of prompt choice and sampling."""
    ckpt_every: int = 0
    """Save a checkpoint every this many steps into ``run_dir`` (0: only at the end of ``train``)."""
    micro_batch_prompts: int = 0
    """Prompts (each with its K responses) per forward/backward pass; their gradients accumulate into
    one optimiser step per ``minibatches`` chunk, exactly the chunk's gradient (0: the whole chunk
    in one pass). Bounds activation memory at full scale; changes no result beyond float rounding."""
    gradient_checkpointing: bool = False
    """Recompute each decoder layer's activations in the backward pass instead of storing them
    (``enable_activation_checkpointing``): less memory, about one more forward pass of compute. With
    ``shared_prefix`` the prompt pass (one row per prompt) is not checkpointed, the response pass is."""
    shared_prefix: bool = True
    """In the update's forward pass, run each prompt once and share its KV cache across its K
    responses (sampling always does). Exact; about 1/K of the prompt compute."""
    bf16_autocast: bool = True
    """On a CUDA device, run the forward passes under ``torch.autocast(bfloat16)`` (weights, gradients
    and optimiser stay float32). Ignored on a CPU: the toy rungs stay float32."""


#: RLVRConfig fields a resumed run may change: how long, how often saved, and how the update is
#: executed (micro-batches, checkpointing, prefix sharing, autocast), none of which changes the algorithm.
RESUMABLE_CHANGES = ("steps", "ckpt_every", "micro_batch_prompts", "gradient_checkpointing", "shared_prefix",
                     "bf16_autocast")


def enable_activation_checkpointing(model) -> None:
    """Turn on a ``transformers`` model's per-layer activation checkpointing (non-reentrant).

    Lessons 01.4, 02.4 (``RLVRConfig.gradient_checkpointing``); no paper equation.
    """
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):          # transformers ≥ 5.2x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    elif hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        raise ValueError("gradient_checkpointing needs a transformers model (gradient_checkpointing_enable)")


def _unwrap(model, accelerator):
    return accelerator.unwrap_model(model) if accelerator is not None else model


class GroupRLTrainer:
    """Group-based RL on any ``transformers`` causal LM: the loop, without the loss.

    Subclasses supply the loss of one chunk of prompts (``compute_loss``) and, if the loss needs
    per-prompt quantities computed from the rollout, ``prompt_extras``: the trainer slices those
    ``(B, …)`` tensors with the chunk's rows and passes them to ``compute_loss`` — an explicit
    argument, not an attribute set in one method and read in another. Module 01's ``RLVRTrainer``
    (any loss of ``rlvr.losses``) and module 02's ``CATTrainer`` (CAT-weighted GRPO) are the two.

    Args:
        model, tokenizer: the policy (e.g. ``build_tiny_lm()`` or ``load_pretrained_lm(...)``).
        task: a ``Task`` (its ``reward`` is the verifier).
        train_problems: the prompts to draw from.
        cfg: ``RLVRConfig``.
        accelerator: an ``accelerate.Accelerator``; default: one on the model's device.
        run_dir: where checkpoints go (``None``: no checkpoints).

    Lessons 01.3, 01.4, 02.3, 02.4; Algorithm 1 of LPO (the loop; the loss is the subclass's).
    """

    def __init__(self, model, tokenizer, task: Task, train_problems: Sequence[Problem],
                 cfg: "RLVRConfig | None" = None, accelerator=None, run_dir: "str | Path | None" = None):
        from accelerate import Accelerator

        if not train_problems:
            raise ValueError("train_problems is empty")
        self.cfg = cfg or RLVRConfig()
        if self.cfg.K < 2:
            raise ValueError(f"group-based RLVR needs K ≥ 2 responses per prompt, got {self.cfg.K}")
        if self.cfg.prompts_per_step % self.cfg.minibatches:
            raise ValueError(f"prompts_per_step={self.cfg.prompts_per_step} must divide into minibatches={self.cfg.minibatches}")
        if self.cfg.micro_batch_prompts < 0:
            raise ValueError(f"micro_batch_prompts must be ≥ 0 (0: the whole chunk), got {self.cfg.micro_batch_prompts}")
        self.task, self.problems = task, list(train_problems)
        self.tokenizer = tokenizer
        if tokenizer.padding_side != "left":
            tokenizer.padding_side = "left"
        device = next(model.parameters()).device
        self.accelerator = accelerator or Accelerator(cpu=device.type == "cpu")
        if self.cfg.gradient_checkpointing:
            enable_activation_checkpointing(model)
        if self.cfg.optimizer == "adamw":
            optimizer = torch.optim.AdamW(model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay,
                                          betas=tuple(self.cfg.betas), foreach=True)   # one kernel per op, not per tensor
        elif self.cfg.optimizer == "sgd":
            optimizer = torch.optim.SGD(model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        else:
            raise ValueError(f"unknown optimizer {self.cfg.optimizer!r}; choose 'adamw' or 'sgd'")
        warm = max(1, self.cfg.warmup_updates)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda u: min(1.0, (u + 1) / warm))
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        self.rng = random.Random(self.cfg.seed * 1000 + self.accelerator.process_index)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.step_count = 0
        self._saved_step: "int | None" = None          # the step of the newest checkpoint this run wrote or loaded
        self.history: list[dict[str, float]] = []

    # ---------------------------------------------------------------------------------- rollout
    def rollout(self, problems: Sequence[Problem]):
        """Sample K responses per problem and score them: ``(Rollout, rewards (B, K))``."""
        policy = _unwrap(self.model, self.accelerator)
        prompts = format_prompts(self.tokenizer, [p.prompt for p in problems], self.cfg.chat_template)
        with self._autocast():
            ro = sample_groups(policy, self.tokenizer, prompts, self.cfg.K, self.cfg.max_new_tokens,
                               self.cfg.temperature, self.cfg.top_p)
        rewards = torch.tensor([[self.task.reward(p, c) for c in group] for p, group in zip(problems, ro.texts)],
                               dtype=torch.float32, device=ro.mask.device)  # (B, K)
        return ro, rewards

    def _autocast(self):
        """bf16 autocast on CUDA (``cfg.bf16_autocast``), else the accelerator's own (a no-op on a CPU)."""
        if self.cfg.bf16_autocast and self.accelerator.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return self.accelerator.autocast()

    def _logp(self, ro, rows: slice, with_entropy: bool = False):
        """``(b, K, T)`` token log-probs of the rollout's prompts in ``rows`` under the current policy.

        Logits only at response positions; with ``cfg.shared_prefix`` each prompt is run once for its
        K responses (``lm.sampling.response_logits``).
        """
        K, T = self.cfg.K, ro.mask.shape[-1]
        flat = slice(rows.start * K, rows.stop * K)                        # rows of (B*K, L)
        out = sequence_logprobs(self.model, ro.input_ids[flat], ro.attention_mask[flat], ro.prompt_len,
                                with_entropy=with_entropy, temperature=self.cfg.temperature,
                                group_size=K if self.cfg.shared_prefix else 1)
        if with_entropy:
            lp, ent = out
            return lp.view(-1, K, T), ent.view(-1, K, T)                 # (b, K, T)
        return out.view(-1, K, T)

    # ---------------------------------------------------------------------------------- one step
    def prompt_extras(self, ro, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-prompt quantities the loss needs from the whole rollout, each ``(B, …)`` (default: none).

        Args: ro the ``Rollout`` (``ro.texts`` holds the decoded responses); rewards ``(B, K)``.
        """
        return {}

    def compute_loss(self, logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor,
                     extras: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one chunk of ``b`` prompts and its statistics (``"loss"``, ``"sum_abs_c"``, …).

        Args: logp ``(b, K, T)`` with grad, old_logp ``(b, K, T)``, mask ``(b, K, T)``, rewards ``(b, K)``,
        extras: ``prompt_extras``'s tensors restricted to the chunk's ``b`` rows.

        Rows (prompts) may interact only through quantities that do not depend on ``logp`` (batch
        normalisers computed from ``mask`` or ``rewards``: a token-mean over the batch, REINFORCE++'s
        batch statistics, CAT's batch-normalised weights), as every loss of the course does: the
        micro-batched update relies on it (``_backward_chunk``).
        """
        raise NotImplementedError("a GroupRLTrainer subclass defines the loss (see RLVRTrainer)")

    def checkpoint_extra(self) -> dict[str, Any]:
        """JSON-able settings a subclass adds to each checkpoint (e.g. its loss configuration)."""
        return {}

    def _backward_chunk(self, ro, rows: slice, old: "torch.Tensor | None", rewards: torch.Tensor,
                        extras: dict[str, torch.Tensor], with_entropy: bool = False) -> tuple[dict[str, float], float]:
        """Accumulate the gradient of one chunk's loss, in micro-batches of ``cfg.micro_batch_prompts`` prompts.

        The chunk's loss ``L(logp)`` couples its rows only through constants (normalisers from the mask
        and rewards, see ``compute_loss``), so its gradient is the sum over micro-batches of the
        gradient of ``L`` evaluated with that micro-batch's rows carrying the graph and every other row
        a constant: each micro-batch calls ``compute_loss`` on the whole chunk (``(b, K, T)``: cheap
        next to the forward pass), so every normaliser is the whole chunk's, and backpropagates
        through its own rows only. The sum is exactly the whole-chunk gradient (up to float rounding);
        the statistics are then computed once on the whole chunk's log-probs.

        Args:
            ro: the ``Rollout``; rows: the chunk's prompts; old: ``(b, K, T)`` π_b log-probs (``None``:
                on-policy, π_b = π_θ); rewards ``(b, K)``; extras: the chunk's rows of ``prompt_extras``.
            with_entropy: also return the mean policy entropy over the chunk's response tokens.
        Returns:
            ``(stats, entropy)`` (entropy NaN when not asked).
        """
        b = rows.stop - rows.start
        micro = min(self.cfg.micro_batch_prompts or b, b)
        mask = ro.mask[rows]
        if micro == b:                                                   # one pass over the whole chunk
            with self._autocast():
                out = self._logp(ro, rows, with_entropy)
                logp, ent = out if with_entropy else (out, None)
                loss, stats = self.compute_loss(logp, logp.detach() if old is None else old, mask, rewards, extras)
            self.accelerator.backward(loss)
        else:
            fill = old if old is not None else torch.zeros_like(mask)    # a constant at the other rows
            pieces, ents = [], []
            for lo in range(0, b, micro):
                hi = min(lo + micro, b)
                with self._autocast():
                    out = self._logp(ro, slice(rows.start + lo, rows.start + hi), with_entropy)
                    lp, e = out if with_entropy else (out, None)
                    full = torch.cat([fill[:lo], lp, fill[hi:]])           # (b, K, T), graph at rows lo..hi
                    loss, _ = self.compute_loss(full, full.detach() if old is None else old, mask, rewards, extras)
                self.accelerator.backward(loss)
                pieces.append(lp.detach())
                ents.append(e)
            logp = torch.cat(pieces)
            ent = torch.cat(ents) if with_entropy else None
            with torch.no_grad():
                _, stats = self.compute_loss(logp, logp if old is None else old, mask, rewards, extras)
        entropy = float((ent * mask).sum() / mask.sum().clamp_min(1.0)) if with_entropy else float("nan")
        return stats, entropy

    def _average_gradients(self) -> None:
        """Mean of the accumulated gradients over processes (one all-reduce; several processes only)."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if not grads:
            return
        flat = self.accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def step(self) -> dict[str, float]:
        """One RLVR iteration (rollout → reward → E × minibatches updates); returns its metrics.

        Each update accumulates its chunk's gradient over micro-batches (``_backward_chunk``), then
        clips and takes one optimiser step. On several processes the gradients are averaged once per
        update (the backward passes run under ``no_sync``; a shared-prefix forward is two calls).
        """
        cfg = self.cfg
        self.model.train()
        problems = [self.problems[self.rng.randrange(len(self.problems))] for _ in range(cfg.prompts_per_step)]
        ro, rewards = self.rollout(problems)
        extras = self.prompt_extras(ro, rewards)                         # each (B, …)
        B = len(problems)
        chunk = B // cfg.minibatches
        micro = min(cfg.micro_batch_prompts or chunk, chunk)
        single_update = cfg.inner_epochs == 1 and cfg.minibatches == 1
        old_logp = None
        if not single_update:                                            # π_b before any update
            with torch.no_grad(), self._autocast():
                old_logp = torch.cat([self._logp(ro, slice(i, min(i + micro, B))) for i in range(0, B, micro)])
        many = self.accelerator.num_processes > 1
        first_stats: dict[str, float] = {}
        last_stats: dict[str, float] = {}
        entropy = float("nan")
        grad_norms = []
        for epoch in range(cfg.inner_epochs):
            for i in range(0, B, chunk):
                rows = slice(i, i + chunk)
                first = epoch == 0 and i == 0
                with (self.accelerator.no_sync(self.model) if many else contextlib.nullcontext()):
                    stats, ent = self._backward_chunk(ro, rows, None if single_update else old_logp[rows],
                                                      rewards[rows], {k: v[rows] for k, v in extras.items()},
                                                      with_entropy=first)
                if many:
                    self._average_gradients()
                if first:
                    entropy = ent
                if cfg.max_grad_norm and cfg.max_grad_norm > 0:
                    gn = self.accelerator.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                    grad_norms.append(gn)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                if not first_stats:
                    first_stats = stats
                last_stats = stats
        self.step_count += 1
        lengths = ro.mask.sum(-1)                                          # (B, K)
        metrics = {
            "step": float(self.step_count),
            "reward": float(rewards.mean()),
            "solved_frac": float((rewards.max(-1).values >= 1.0).float().mean()),  # ≥ 1 correct of K
            "entropy": entropy,
            "resp_len": float(lengths.float().mean()),
            "loss": first_stats.get("loss", float("nan")),
            "sum_abs_c": first_stats.get("sum_abs_c", float("nan")),
            "sum_abs_c_last": last_stats.get("sum_abs_c", float("nan")),
            "clip_frac_last": last_stats.get("clip_frac", float("nan")),
            "grad_norm": float(torch.stack(grad_norms).double().mean()) if grad_norms else float("nan"),
        }
        metrics = self._reduce(metrics)
        self.history.append(metrics)
        return metrics

    def _reduce(self, metrics: dict[str, float]) -> dict[str, float]:
        """Average metrics over processes (no-op on one process)."""
        if self.accelerator.num_processes == 1:
            return metrics
        keys = sorted(metrics)
        t = torch.tensor([metrics[k] for k in keys], device=self.accelerator.device)
        t = self.accelerator.reduce(t, reduction="mean")
        return {k: float(v) for k, v in zip(keys, t.tolist())}

    # ---------------------------------------------------------------------------------- loop
    def train(self, steps: "int | None" = None, callback: "Callable[[dict], None] | None" = None,
              desc: str = "RLVR") -> list[dict[str, float]]:
        """Run until ``steps`` iterations in total are done (resuming from ``run_dir`` if it holds a checkpoint)."""
        total = self.cfg.steps if steps is None else steps
        if self.run_dir is not None and self.step_count == 0 and latest_checkpoint(self.run_dir) is not None:
            self.resume()
        for _ in progress(range(self.step_count, total), desc=desc, total=max(0, total - self.step_count)):
            m = self.step()
            if callback is not None:
                callback(m)
            if self.run_dir is not None and self.cfg.ckpt_every and self.step_count % self.cfg.ckpt_every == 0:
                self.save()
        if self.run_dir is not None and self._saved_step != self.step_count:   # each step is saved once
            self.save()
        return self.history

    # ---------------------------------------------------------------------------------- checkpoints
    def save(self) -> "Path | None":
        """Atomic checkpoint of model, optimizer, RNGs, step, history and the prompt RNG (main process)."""
        if self.run_dir is None:
            raise ValueError("no run_dir given: nowhere to save")
        self.accelerator.wait_for_everyone()
        path = None
        if self.accelerator.is_main_process:
            extra = {"history": self.history, "prompt_rng": _rng_to_json(self.rng.getstate()),
                     "cfg": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.cfg).items()},
                     **self.checkpoint_extra()}
            path = save_checkpoint(self.run_dir, self.step_count, _unwrap(self.model, self.accelerator),
                                   self.optimizer, extra=extra)
        self._saved_step = self.step_count
        self.accelerator.wait_for_everyone()
        return path

    def fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share with the saved one (all but ``RESUMABLE_CHANGES``: the
        length, checkpoint interval and memory/speed settings, which a resume may change), as JSON values."""
        cfg = {k: v for k, v in asdict(self.cfg).items() if k not in RESUMABLE_CHANGES}
        return json.loads(json.dumps({"cfg": cfg, **self.checkpoint_extra()}))

    def _check_fingerprint(self, extra: dict[str, Any]) -> None:
        """Refuse to continue a saved run with other settings (``--loss lpo_rev --K 2`` on a GRPO, K = 4 run)."""
        now = self.fingerprint()
        saved = {"cfg": {k: v for k, v in extra.get("cfg", {}).items() if k not in RESUMABLE_CHANGES},
                 **{k: extra[k] for k in now if k != "cfg" and k in extra}}
        diffs = [f"{k}: saved {saved['cfg'].get(k)!r}, now {v!r}" for k, v in now["cfg"].items()
                 if k in saved["cfg"] and saved["cfg"][k] != v]
        diffs += [f"{k}: saved {saved[k]!r}, now {now[k]!r}" for k in now if k != "cfg" and k in saved and saved[k] != now[k]]
        if diffs:
            raise ValueError(f"{self.run_dir} holds a run with other settings ({'; '.join(diffs)}); "
                             "resume it with its own settings, or use a new --run-dir")

    def resume(self) -> bool:
        """Load the newest checkpoint of ``run_dir`` (if any); True when one was loaded."""
        if self.run_dir is None:
            return False
        extra = checkpoint_extra(self.run_dir)
        if extra is None:
            return False
        self._check_fingerprint(extra)
        state = load_checkpoint(self.run_dir, _unwrap(self.model, self.accelerator), self.optimizer)
        self.step_count = self._saved_step = int(state["step"])
        self.history = list(state["extra"].get("history", []))
        if "prompt_rng" in state["extra"]:
            self.rng.setstate(_rng_from_json(state["extra"]["prompt_rng"]))
        return True

    # ---------------------------------------------------------------------------------- eval
    def evaluate(self, problems: Sequence[Problem], n_samples: int = 8, ks: Sequence[int] = (1, 8),
                 temperature: "float | None" = None, batch_prompts: int = 32) -> dict[str, float]:
        """Held-out pass@k of the current policy (see ``evaluate_pass_at_k``)."""
        return evaluate_pass_at_k(_unwrap(self.model, self.accelerator), self.tokenizer, self.task, problems,
                                  n_samples=n_samples, ks=ks, max_new_tokens=self.cfg.max_new_tokens,
                                  temperature=self.cfg.temperature if temperature is None else temperature,
                                  chat_template=self.cfg.chat_template, batch_prompts=batch_prompts)


def _rng_to_json(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def _rng_from_json(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])


def train_logged(trainer: GroupRLTrainer, metrics_file: "str | Path", desc: str, echo: bool = False) -> list[dict]:
    """A launcher's training loop: resume, train, and append one JSON line per iteration to ``metrics_file``.

    On resume the file is first rewritten from the checkpoint's history, so iterations that ran after
    the last checkpoint (and are run again) are not logged twice. Only the main process writes.

    Lessons 01.4, 02.4 (the launchers); no paper equation.
    """
    metrics_file = Path(metrics_file)
    main = trainer.accelerator.is_main_process
    trainer.resume()
    if main:
        lines = "".join(json.dumps(m) + "\n" for m in trainer.history)
        tmp = metrics_file.with_name(metrics_file.name + ".tmp")
        tmp.write_text(lines)
        tmp.replace(metrics_file)

    def log(m: dict) -> None:
        if main:
            with open(metrics_file, "a") as f:
                f.write(json.dumps(m) + "\n")
            if echo:
                print(" ".join(f"{k}={v:.4g}" for k, v in m.items()), flush=True)

    return trainer.train(callback=log, desc=desc)
