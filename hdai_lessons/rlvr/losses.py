"""RLVR losses: GRPO's clipped surrogate, LPO's forward/reverse-KL projections, the pointwise ablation.

LPO (arXiv 2605.06139) splits a group-based policy update into a target on the response simplex,
``w* = softmax(R/τ + s_t)`` (Theorem 1, ``targets.lpo_target``), and a projection of the listwise
distribution ``P_θ = softmax(s_θ)`` (Eq. (4)) onto it:

- forward KL, ``L_fwd = KL(w* ‖ P_θ)`` (Eq. (10)), coefficient ``c_k = P_θ,k − w*_k`` (Eq. (13));
- reverse KL, ``L_rev = KL(P_θ ‖ w*)`` (Eq. (11)), coefficient ``c_k = P_θ,k (d_k − d̄)`` with
  ``d_k = s_θ,k − φ_k``, ``φ = log w*``, ``d̄ = Σ_j P_θ,j d_j`` (Eqs. (14)–(17)).

Both are available in *direct* form (the KL itself) and in *coefficient* form
``Σ_k sg(c_k) s_θ,k`` (same gradient). Token handling (Section 4.3 / Appendix D.3): the token
log-ratio ``δ_{k,i} = log π_θ − log π_b`` is clipped to ``[log(1−ε), log(1+ε)]`` and aggregated
into ``s_θ,k`` by a token **sum** or token **mean** — the paper's Eq. (3) is ambiguous between the
two, so ``agg`` is a parameter (``"mean"`` is the default, the more natural reading).

Shapes: ``logp``, ``old_logp``, ``mask`` are ``(B, K, T)`` (B groups/prompts, K responses per
group, T response tokens, right-padded); ``rewards`` ``(B, K)``; listwise logits ``s`` ``(B, K)``.
All losses are *minimised*.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hdai_lessons.core.ops import masked_mean
from hdai_lessons.rlvr.targets import advantages as scheme_advantages
from hdai_lessons.rlvr.targets import lpo_log_target, tau_from_rule

LPO_NAMES = ("lpo_fwd", "lpo_rev", "pointwise")
PG_NAMES = ("grpo", "dr_grpo", "rloo", "maxrl", "reinforce", "reinforce_pp")
LOSS_NAMES = PG_NAMES + LPO_NAMES
LPO_AGGS = ("mean", "sum")
GRPO_AGGS = ("seq_mean", "seq_sum", "token", "constant")


@dataclass
class LossConfig:
    """Which RLVR loss to use and how (shared by the bandit, the tiny-LM trainer and full scale).

    Lessons 01.2–01.4; picks Eq. (2) (GRPO), (10) (LPO-fwd), (11) (LPO-rev) or (52) (pointwise) of LPO.
    """

    name: str = "lpo_fwd"
    """"grpo" | "dr_grpo" | "rloo" | "maxrl" | "reinforce" | "reinforce_pp" (clipped PG surrogate with
    that scheme's Table-1 advantage) | "lpo_fwd" | "lpo_rev" | "pointwise"."""
    eps: float = 0.2
    """Clip: ratio clip [1−ε, 1+ε] for PG losses, token log-ratio clip [log(1−ε), log(1+ε)] for LPO;
    ``None`` or ``inf`` disables clipping."""
    tau_rule: str = "std"
    """LPO temperature paired with a baseline: "std" (σ_G, GRPO), "one" (Dr.GRPO), "mean" (μ_G, MaxRL), "rloo"."""
    agg: str = "mean"
    """Token aggregation. LPO: "mean" | "sum" (how s_k is built). PG: "seq_mean" (GRPO, alias "mean"),
    "seq_sum" (alias "sum"), "token" (token-normalised, TRL "bnpo"), "constant" (Dr.GRPO, 1/(T·K))."""
    form: str = "direct"
    """LPO only: "direct" (the KL) or "coefficient" (Σ sg(c_k) s_k); identical gradients."""
    adv_eps: float = 1e-6
    """eps added to σ_G / μ_G in advantages and temperatures (equal-reward groups give 0, not NaN)."""


# --------------------------------------------------------------------------------------------
# token level


def _check_token_shapes(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> None:
    if logp.dim() != 3:
        raise ValueError(f"logp must be (B, K, T), got shape {tuple(logp.shape)}")
    if old_logp.shape != logp.shape or mask.shape != logp.shape:
        raise ValueError(f"logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)} and mask "
                         f"{tuple(mask.shape)} must all have the same shape (B, K, T)")


def _clip_off(eps: "float | None") -> bool:
    return eps is None or math.isinf(eps)


def clipped_token_log_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, eps: "float | None" = 0.2) -> torch.Tensor:
    """Token log-ratio clip of LPO (Section 4.3): ``clamp(logp − old_logp, log(1−ε), log(1+ε)) ⊙ mask``.

    ``old_logp`` is treated as a constant (stop-gradient); the clamp passes no gradient for tokens
    outside the trust region.

    Args:
        logp: ``(..., T)`` token log-probs under π_θ (with grad); old_logp: ``(..., T)`` under π_b;
        mask: ``(..., T)`` 1 for response tokens, 0 for padding; eps: clip ε (None: no clip).
    Returns:
        ``(..., T)`` clipped log-ratios, 0 at padding.

    Lesson 01.2; Section 4.3 of LPO (token-level clip).
    """
    delta = logp - old_logp.detach()
    if not _clip_off(eps):
        delta = delta.clamp(math.log(1.0 - eps), math.log(1.0 + eps))
    return delta * mask.to(delta.dtype)


def aggregate_tokens(x: torch.Tensor, mask: torch.Tensor, agg: str = "mean") -> torch.Tensor:
    """Token sum or token mean over the last dim (the ambiguity of Eq. (3) of LPO): ``(..., T)`` → ``(...,)``.

    Lesson 01.2; Eq. (3) of LPO.
    """
    if agg == "sum":
        return (x * mask.to(x.dtype)).sum(-1)
    if agg == "mean":
        return masked_mean(x, mask.to(x.dtype))
    raise ValueError(f"unknown LPO token aggregation {agg!r}; choose 'mean' or 'sum'")


def listwise_logits(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, eps: "float | None" = 0.2, agg: str = "mean") -> torch.Tensor:
    """``s_θ,k`` of Eq. (4) of LPO from token log-probs, with the token log-ratio clip.

    ``s_θ,k = agg_i clip(log π_θ(y_k,i|…) − log π_b(y_k,i|…))``; ``(B, K, T)`` → ``(B, K)``.
    On-policy (π_θ = π_b) it is 0 and ``P_θ = softmax(s)`` is uniform.

    Lesson 01.2; Eq. (4) of LPO.
    """
    return aggregate_tokens(clipped_token_log_ratio(logp, old_logp, mask, eps), mask, agg)


# --------------------------------------------------------------------------------------------
# group level: coefficients and projections on the simplex


def lpo_forward_coefficients(s: torch.Tensor, w_star: torch.Tensor) -> torch.Tensor:
    """Eq. (13) of LPO: ``c_k^fwd = P_θ,k − w*_k`` with ``P_θ = softmax(s)``; ``(..., K)`` → ``(..., K)``.

    Corollary 1: ``|c_k| ≤ 1``, ``Σ_k c_k = 0``, ``Σ_k |c_k| ≤ 2`` and ``c → 0`` as ``P_θ → w*``.
    Descent convention: a negative ``c_k`` pushes response k up.

    Lesson 01.1; Eq. (13) of LPO.
    """
    return torch.softmax(s, dim=-1) - w_star


def lpo_reverse_coefficients(s: torch.Tensor, w_star: torch.Tensor, log_w_star: "torch.Tensor | None" = None) -> torch.Tensor:
    """Eq. (17) of LPO: ``c_k^rev = P_θ,k (d_k − d̄)``, ``d_k = s_k − log w*_k``, ``d̄ = Σ_j P_θ,j d_j``.

    ``log w*`` stands for φ (Theorem 1): a constant shift cancels in ``d − d̄``. Zero-sum and
    self-correcting, but not bounded like the forward coefficients. On-policy (``s = 0``) it is
    ``−A_k/K``, the GRPO step (Proposition 1).

    Args:
        s: ``(..., K)`` listwise logits; w_star: ``(..., K)``; log_w_star: optional exact ``log w*``.
    Returns:
        ``(..., K)``.

    Lesson 01.1; Eq. (17) of LPO.
    """
    logw = log_w_star if log_w_star is not None else torch.log(w_star.clamp_min(torch.finfo(w_star.dtype).tiny))
    P = torch.softmax(s, dim=-1)
    d = s - logw  # (..., K)
    d_bar = (P * d).sum(-1, keepdim=True)  # (..., 1)
    return P * (d - d_bar)


def pointwise_coefficients(s: torch.Tensor, w_star: torch.Tensor) -> torch.Tensor:
    """Eq. (52) of LPO (the pointwise ablation): ``c_k = −w*_k``, independent of π_θ, ``Σ_k c_k = −1``.

    Lesson 01.2; Eq. (52) of LPO.
    """
    if s.shape != w_star.shape:
        raise ValueError(f"s {tuple(s.shape)} and w_star {tuple(w_star.shape)} must have the same shape")
    return -w_star.clone()


def _entropy(w: torch.Tensor, logw: torch.Tensor) -> torch.Tensor:
    return -(w * logw).sum(-1)


def lpo_forward_kl_loss(s: torch.Tensor, w_star: torch.Tensor, form: str = "direct", log_w_star: "torch.Tensor | None" = None) -> torch.Tensor:
    """LPO-fwd projection, Eq. (10) of LPO: ``KL(w* ‖ P_θ) = −Σ_k w*_k log P_θ,k − H(w*)`` per group.

    ``form="direct"`` returns the KL (≥ 0); ``form="coefficient"`` returns ``Σ_k sg(P_θ,k − w*_k) s_k``,
    which has the same gradient (Eq. (13)) but a different value.

    Args:
        s: ``(..., K)`` listwise logits (with grad); w_star: ``(..., K)`` target (no grad).
    Returns:
        ``(...,)`` loss per group.

    Lessons 01.1 and 01.2; Eq. (10) of LPO.
    """
    w = w_star.detach()
    if form == "coefficient":
        return (lpo_forward_coefficients(s, w).detach() * s).sum(-1)
    if form != "direct":
        raise ValueError(f"unknown form {form!r}; choose 'direct' or 'coefficient'")
    logw = log_w_star.detach() if log_w_star is not None else torch.log(w.clamp_min(torch.finfo(w.dtype).tiny))
    logP = torch.log_softmax(s, dim=-1)
    return -(w * logP).sum(-1) - _entropy(w, logw)


def lpo_reverse_kl_loss(s: torch.Tensor, w_star: torch.Tensor, form: str = "direct", log_w_star: "torch.Tensor | None" = None) -> torch.Tensor:
    """LPO-rev projection, Eq. (11) of LPO: ``KL(P_θ ‖ w*) = Σ_k P_θ,k (log P_θ,k − log w*_k)`` per group.

    ``form="coefficient"`` returns ``Σ_k sg(P_θ,k (d_k − d̄)) s_k`` (Eq. (17), same gradient).

    Args:
        s: ``(..., K)`` listwise logits (with grad); w_star: ``(..., K)``; log_w_star: optional exact log.
    Returns:
        ``(...,)`` loss per group.

    Lessons 01.1 and 01.2; Eq. (11) of LPO.
    """
    w = w_star.detach()
    logw = log_w_star.detach() if log_w_star is not None else torch.log(w.clamp_min(torch.finfo(w.dtype).tiny))
    if form == "coefficient":
        return (lpo_reverse_coefficients(s, w, logw).detach() * s).sum(-1)
    if form != "direct":
        raise ValueError(f"unknown form {form!r}; choose 'direct' or 'coefficient'")
    logP = torch.log_softmax(s, dim=-1)
    return (logP.exp() * (logP - logw)).sum(-1)


def pointwise_loss(s: torch.Tensor, w_star: torch.Tensor) -> torch.Tensor:
    """The pointwise ablation, Eq. (52) of LPO: ``−Σ_k w*_k log π_θ(y_k|x)`` (as ``−Σ_k w*_k s_k``).

    ``s_k`` differs from ``log π_θ(y_k|x)`` by the constant ``log π_b(y_k|x)`` (and the clip), so
    the gradient is the paper's, coefficient ``−w*_k``. ``(..., K)`` → ``(...,)``.

    Lesson 01.2; Eq. (52) of LPO.
    """
    return -(w_star.detach() * s).sum(-1)


# --------------------------------------------------------------------------------------------
# PG surrogates (GRPO family)


def grpo_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, adv: torch.Tensor,
                   eps: "float | None" = 0.2, agg: str = "seq_mean", max_len: "int | None" = None) -> torch.Tensor:
    """GRPO's clipped token-level surrogate, Eq. (2) of LPO, negated (a loss to minimise), per group.

    ``l_{k,i} = min(r_{k,i} A_k, clip(r_{k,i}, 1−ε, 1+ε) A_k)``, ``r = exp(logp − old_logp)``, then

    - ``"seq_mean"`` (GRPO, Eq. (2)): ``−(1/K) Σ_k (1/|y_k|) Σ_i l_{k,i}``;
    - ``"seq_sum"``: ``−(1/K) Σ_k Σ_i l_{k,i}`` (matches LPO's token-sum ``s_k``);
    - ``"constant"`` (Dr.GRPO): ``−(1/(L·K)) Σ_k Σ_i l_{k,i}``, L = ``max_len`` or T;
    - ``"token"`` (token-normalised, TRL "bnpo"): each group gets ``−Σ_{k,i} l / N_tok`` with
      N_tok the number of response tokens in the **whole batch**, times B, so that the mean over
      groups is the batch token mean.

    Args:
        logp, old_logp, mask: ``(B, K, T)``; adv: ``(B, K)`` advantages; eps: ratio clip (None: off).
    Returns:
        ``(B,)`` loss per group (take ``.mean()`` for the batch loss).

    Lesson 01.2; Eq. (2) of LPO.
    """
    _check_token_shapes(logp, old_logp, mask)
    if adv.shape != logp.shape[:2]:
        raise ValueError(f"advantages {tuple(adv.shape)} must be (B, K) = {tuple(logp.shape[:2])}")
    m = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp.detach())  # (B, K, T)
    A = adv.detach().unsqueeze(-1)  # (B, K, 1)
    unclipped = ratio * A
    clipped = unclipped if _clip_off(eps) else ratio.clamp(1.0 - eps, 1.0 + eps) * A
    tok = torch.minimum(unclipped, clipped) * m  # (B, K, T)
    K, T = logp.shape[1], logp.shape[2]
    if agg in ("seq_mean", "mean"):
        return -masked_mean(tok, m).mean(-1)                                 # tok is already masked
    if agg in ("seq_sum", "sum"):
        return -tok.sum(-1).mean(-1)
    if agg == "constant":
        L = max_len if max_len is not None else T
        return -tok.sum((-1, -2)) / (L * K)
    if agg == "token":
        B = logp.shape[0]
        return -tok.sum((-1, -2)) * B / m.sum().clamp_min(1.0)
    raise ValueError(f"unknown GRPO aggregation {agg!r}; choose one of {GRPO_AGGS}")


# --------------------------------------------------------------------------------------------
# one entry point


def rlvr_loss(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor,
              cfg: "LossConfig | None" = None) -> "tuple[torch.Tensor, dict[str, float]]":
    """The RLVR loss of ``cfg.name`` for one (mini-)batch of B groups of K responses.

    Args:
        logp: ``(B, K, T)`` token log-probs under π_θ (with grad).
        old_logp: ``(B, K, T)`` token log-probs under the behaviour policy π_b (no grad).
        mask: ``(B, K, T)`` 1.0 for response tokens, 0.0 for padding.
        rewards: ``(B, K)`` verifier rewards.
        cfg: ``LossConfig``.
    Returns:
        ``(loss, stats)``: the scalar loss to minimise (mean over groups) and floats
        ``loss``, ``sum_abs_c`` (Σ_k |c_k| per group, averaged over groups: for PG losses the
        effective coefficient ``−A_k r̄_k / K`` on ``∇ s_k``), ``clip_frac`` (fraction of response
        tokens outside the trust region), ``ratio_mean``, and for LPO ``kl_fwd`` = KL(w* ‖ P_θ)
        and ``w_star_max``.

    Lessons 01.2–01.4; the loss line of Algorithm 1 of LPO (Eqs. (2), (10), (11), (52)).
    """
    cfg = cfg or LossConfig()
    _check_token_shapes(logp, old_logp, mask)
    if rewards.shape != logp.shape[:2]:
        raise ValueError(f"rewards {tuple(rewards.shape)} must be (B, K) = {tuple(logp.shape[:2])}")
    rewards = rewards.to(logp.dtype)
    m = mask.to(logp.dtype)
    # statistics are collected as 0-d tensors and moved to the host once (a single device sync)
    st: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        log_ratio = logp.detach() - old_logp.detach()  # (B, K, T)
        n_tok = m.sum().clamp_min(1.0)
        if _clip_off(cfg.eps):
            st["clip_frac"] = torch.zeros((), dtype=logp.dtype, device=logp.device)
        else:
            outside = (log_ratio < math.log(1 - cfg.eps)) | (log_ratio > math.log(1 + cfg.eps))
            st["clip_frac"] = (outside.to(m.dtype) * m).sum() / n_tok
        st["ratio_mean"] = (log_ratio.exp() * m).sum() / n_tok

    if cfg.name in PG_NAMES:
        adv = scheme_advantages(rewards, cfg.name, cfg.adv_eps)  # (B, K)
        per_group = grpo_surrogate(logp, old_logp, mask, adv, cfg.eps, cfg.agg)
        with torch.no_grad():
            K = logp.shape[1]
            ratio = log_ratio.exp()
            if _clip_off(cfg.eps):
                active = torch.ones_like(ratio)
            else:  # tokens whose gradient survives the min/clip of Eq. (2)
                A = adv.unsqueeze(-1)
                active = ~(((ratio > 1 + cfg.eps) & (A > 0)) | ((ratio < 1 - cfg.eps) & (A < 0)))
                active = active.to(ratio.dtype)
            r_bar = masked_mean(ratio * active, m)  # (B, K)
            st["sum_abs_c"] = (adv * r_bar / K).abs().sum(-1).mean()
    elif cfg.name in LPO_NAMES:
        if cfg.agg not in LPO_AGGS:
            raise ValueError(f"LPO aggregation must be 'mean' or 'sum' (the Eq. (3) ambiguity), got {cfg.agg!r}")
        s = listwise_logits(logp, old_logp, mask, cfg.eps, cfg.agg)  # (B, K)
        tau = tau_from_rule(rewards, cfg.tau_rule, cfg.adv_eps)  # (B, 1)
        log_w = lpo_log_target(rewards, tau)  # (B, K), s_t = 0 (π_t = π_b, Algorithm 1)
        w = log_w.exp()
        if cfg.name == "lpo_fwd":
            per_group = lpo_forward_kl_loss(s, w, cfg.form, log_w)
            c = lpo_forward_coefficients(s.detach(), w)
        elif cfg.name == "lpo_rev":
            per_group = lpo_reverse_kl_loss(s, w, cfg.form, log_w)
            c = lpo_reverse_coefficients(s.detach(), w, log_w)
        else:
            per_group = pointwise_loss(s, w)
            c = pointwise_coefficients(s.detach(), w)
        with torch.no_grad():
            logP = torch.log_softmax(s.detach(), -1)
            st["sum_abs_c"] = c.abs().sum(-1).mean()
            st["kl_fwd"] = (w * (log_w - logP)).sum(-1).mean()
            st["w_star_max"] = w.max(-1).values.mean()
    else:
        raise ValueError(f"unknown loss {cfg.name!r}; choose one of {LOSS_NAMES}")
    loss = per_group.mean()
    st["loss"] = loss.detach()
    values = torch.stack([v.to(torch.float64) for v in st.values()]).tolist()  # one host transfer
    stats = dict(zip(st.keys(), values))
    return loss, stats
