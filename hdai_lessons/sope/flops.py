"""Analytic FLOP accounting as the paper does it (``main_unified_flops.py`` in the authors' research repo).

- forward FLOPs of an MLP: ``F = Σ_layers 2·B·d_in·d_out``; a backward pass counts ``2F``;
- online SAC update: ``π_fwd + N·Q_fwd`` (target) ``+ N·(Q_fwd + Q_bwd)`` (critics)
  ``+ (π_fwd + π_bwd + N·Q_fwd)`` (policy);
- stabilisation step: the same without the policy term;
- the validation passes (``π_fwd + N·Q_fwd`` on the held-out states at every check) — the public counter
  omits them; ``count_validation=True`` adds them. The counter uses ``B = 256`` although the symmetric
  batch has 512 rows; ``batch`` is an argument here so both readings can be printed.
"""
from __future__ import annotations

from dataclasses import dataclass


def mlp_forward_flops(batch: int, dims: "list[int] | tuple[int, ...]") -> int:
    """``Σ_l 2·B·d_l·d_{l+1}`` for an MLP with layer widths ``dims = [d_in, h_1, …, d_out]``.

    Lesson 03.4 (exercise 03.4.1); SOPE digest, "Compute accounting" (``F = Σ_layers 2·B·d_in·d_out``)."""
    return sum(2 * batch * a * b for a, b in zip(dims[:-1], dims[1:]))


@dataclass(frozen=True)
class NetDims:
    """The widths of SOPE's networks: actor ``[o, *h, 2a]``, each critic ``[o + a, *h, 1]``, ``N`` critics.

    Lesson 03.4; SOPE digest, "Networks" (2×256 MLPs, N = 2 critics)."""

    obs_dim: int
    act_dim: int
    hidden: tuple = (256, 256)
    n_critics: int = 2

    @property
    def actor(self) -> list[int]:
        return [self.obs_dim, *self.hidden, 2 * self.act_dim]

    @property
    def critic(self) -> list[int]:
        return [self.obs_dim + self.act_dim, *self.hidden, 1]


def online_update_flops(d: NetDims, batch: int = 256) -> int:
    """One SAC update: target ``π_fwd + N·Q_fwd``, critics ``N·3Q_fwd``, policy ``3π_fwd + N·Q_fwd``.

    Lesson 03.4; SOPE digest, "Compute accounting" (online update)."""
    pi, q = mlp_forward_flops(batch, d.actor), mlp_forward_flops(batch, d.critic)
    target = pi + d.n_critics * q
    critics = d.n_critics * (q + 2 * q)
    policy = pi + 2 * pi + d.n_critics * q
    return target + critics + policy


def stabilisation_update_flops(d: NetDims, batch: int = 256) -> int:
    """One critic-only phase step: the online update without the policy term.

    Lesson 03.4; SOPE digest, "Compute accounting" (stabilisation step)."""
    pi, q = mlp_forward_flops(batch, d.actor), mlp_forward_flops(batch, d.critic)
    return pi + d.n_critics * q + d.n_critics * 3 * q


def validation_flops(d: NetDims, n_states: int) -> int:
    """One ``Ĵ_val`` evaluation on ``n_states`` held-out states: ``π_fwd + N·Q_fwd``.

    Lesson 03.4; the validation passes the paper's counter ignores (SOPE digest, "Compute accounting", limits)."""
    return mlp_forward_flops(n_states, d.actor) + d.n_critics * mlp_forward_flops(n_states, d.critic)


def total_flops(d: NetDims, online_updates: int, stabilisation_updates: int, validation_states: int = 0,
                batch: int = 256, count_validation: bool = True) -> int:
    """Whole-run FLOPs; ``validation_states`` is the total number of states over every ``Ĵ_val`` check.

    Lesson 03.4; SOPE digest, "Compute accounting" (the TFLOPs of "Headline aggregate results")."""
    total = online_updates * online_update_flops(d, batch) + stabilisation_updates * stabilisation_update_flops(d, batch)
    if count_validation:
        total += validation_flops(d, validation_states)
    return total


def normalized_score(ret: float, random_return: float, expert_return: float) -> float:
    """The paper's score ``100·(R − R_rand)/(R_exp − R_rand)``.

    Lesson 03.4 (exercise 03.4.2); SOPE digest, "Evaluation metric"."""
    if expert_return == random_return:
        raise ValueError("expert and random returns are equal; the score is undefined")
    return 100.0 * (ret - random_return) / (expert_return - random_return)
