"""Off-policy evaluation (OPE) estimators, from scratch (lesson 03.1).

All estimate ``J(π_e) = E_{π_e}[Σ_{t<H} γ^t r_t]`` from episodes logged by a behaviour policy
``π_b``. Inputs are ``(N, H)`` arrays (``N`` episodes, horizon ``H``); per-step importance ratios
are ``ρ_t = π_e(a_t|s_t) / π_b(a_t|s_t)`` and cumulative weights ``w_t = Π_{k≤t} ρ_k``.

- ``is_estimate``: trajectory-wise importance sampling, ``mean_i w_{H−1}^{(i)} G^{(i)}`` (unbiased).
- ``wis_estimate``: weighted (self-normalised) IS, ``Σ_i w^{(i)} G^{(i)} / Σ_i w^{(i)}`` (biased, lower variance).
- ``pdis_estimate``: per-decision IS, ``mean_i Σ_t γ^t w_t r_t`` (a reward only needs the ratios before it).
- ``dr_estimate``: doubly robust (Jiang & Li 2016, Eq. (10) there), PDIS with a Q̂ control variate.
- ``cross_fit_dr_estimate``: DR whose ``Q̂`` for each fold of episodes is fitted on the other folds.
- ``fqe_tabular`` / ``dm_estimate``: the direct method — fitted Q evaluation on the data, then
  ``Σ_s d0(s) Σ_a π_e(a|s) Q̂_0(s,a)``. SOPE's stopping signal is a DM estimate (with the critic it is
  training, see ``phases.dm_value_estimate``), not IS or DR.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdai_lessons.sope.tabular import TabularMDP, Trajectories, evaluate_policy, mix_policies, sample_trajectories


def importance_ratios(traj: Trajectories, pi_e: np.ndarray) -> np.ndarray:
    """``(N, H)`` per-step ratios ``ρ_t = π_e(a_t|s_t) / π_b(a_t|s_t)``.

    Lesson 03.1; the per-step ratio of importance sampling (Precup, Sutton & Singh 2000)."""
    return pi_e[traj.states, traj.actions] / traj.behavior_probs


def discounts(horizon: int, gamma: float) -> np.ndarray:
    """``(H,)``: ``γ^t`` for ``t = 0..H−1``.

    Lesson 03.1; the γ^t weights of ``J(π)`` that every estimator here uses (no paper equation)."""
    return gamma ** np.arange(horizon)


def is_estimate(rewards: np.ndarray, ratios: np.ndarray, gamma: float) -> float:
    """Trajectory-wise IS: ``(1/N) Σ_i (Π_{t<H} ρ_t^{(i)}) Σ_t γ^t r_t^{(i)}``.

    Args:
        rewards, ratios: ``(N, H)``.
    Returns: a float, unbiased for ``J(π_e)`` when ``π_b > 0`` wherever ``π_e > 0``.

    Lesson 03.1 (exercise 03.1.1); trajectory-wise importance sampling (Precup, Sutton & Singh 2000).
    """
    returns = rewards @ discounts(rewards.shape[1], gamma)     # (N,)
    weights = ratios.prod(axis=1)                              # (N,)
    return float((weights * returns).mean())


def wis_estimate(rewards: np.ndarray, ratios: np.ndarray, gamma: float) -> float:
    """Weighted IS: ``Σ_i w^{(i)} G^{(i)} / Σ_i w^{(i)}`` with ``w^{(i)} = Π_t ρ_t^{(i)}``; 0 if all weights are 0.

    Args: ``rewards, ratios``: ``(N, H)``. Consistent but biased for finite ``N``; never outside the
    range of observed returns.

    Lesson 03.1 (exercise 03.1.2); weighted importance sampling (Precup, Sutton & Singh 2000).
    """
    returns = rewards @ discounts(rewards.shape[1], gamma)     # (N,)
    weights = ratios.prod(axis=1)                              # (N,)
    total = weights.sum()
    return float((weights * returns).sum() / total) if total > 0 else 0.0


def pdis_estimate(rewards: np.ndarray, ratios: np.ndarray, gamma: float) -> float:
    """Per-decision IS: ``(1/N) Σ_i Σ_t γ^t w_t^{(i)} r_t^{(i)}`` with ``w_t = Π_{k≤t} ρ_k``.

    Args: ``rewards, ratios``: ``(N, H)``.

    Lesson 03.1; per-decision importance sampling (Precup, Sutton & Singh 2000).
    """
    w = np.cumprod(ratios, axis=1)                             # (N, H)
    return float((w * rewards * discounts(rewards.shape[1], gamma)).sum(1).mean())


def dr_estimate(rewards: np.ndarray, ratios: np.ndarray, q_hat: np.ndarray, v_hat: np.ndarray, gamma: float) -> float:
    """Doubly robust, step-wise (Jiang & Li 2016, Eq. (10)):

    ``(1/N) Σ_i Σ_t γ^t [ w_t r_t − (w_t Q̂_t(s_t,a_t) − w_{t−1} V̂_t(s_t)) ]``, ``w_{−1} = 1``.

    Args:
        rewards, ratios: ``(N, H)``.
        q_hat: ``(N, H)`` the model's ``Q̂_t(s_t, a_t)`` at the logged pairs.
        v_hat: ``(N, H)`` ``V̂_t(s_t) = Σ_a π_e(a|s_t) Q̂_t(s_t, a)``.
    Unbiased if either the ratios are exact or ``Q̂`` is exact; lower variance than PDIS when Q̂ is good.

    Lesson 03.1 (exercise 03.1.3).
    """
    w = np.cumprod(ratios, axis=1)                                           # (N, H)
    w_prev = np.concatenate([np.ones_like(w[:, :1]), w[:, :-1]], axis=1)     # (N, H): w_{t-1}
    terms = w * rewards - (w * q_hat - w_prev * v_hat)                       # (N, H)
    return float((terms * discounts(rewards.shape[1], gamma)).sum(1).mean())


def fqe_tabular(traj: Trajectories, pi_e: np.ndarray, n_states: int, n_actions: int, gamma: float,
                horizon: int) -> np.ndarray:
    """Fitted Q evaluation on a table: ``(H, S, A)`` estimates ``Q̂_t``.

    Backwards from ``Q̂_H = 0``, regress ``r + γ Σ_{a'} π_e(a'|s') Q̂_{t+1}(s', a')`` on ``(s, a)`` over every
    logged transition (the MDP is stationary, so all time steps pool). On a table, least-squares
    regression is the per-``(s,a)`` mean, so this equals exact evaluation in the *empirical* MDP
    (certainty equivalence). Unvisited pairs get ``Q̂ = 0`` — the DM's bias when coverage is poor.

    Lesson 03.1; fitted Q evaluation (Le, Voloshin & Yue 2019), the model of the direct method.
    """
    s, a = traj.states.ravel(), traj.actions.ravel()
    r, s2 = traj.rewards.ravel(), traj.next_states.ravel()
    counts = np.zeros((n_states, n_actions))
    np.add.at(counts, (s, a), 1.0)
    Q = np.zeros((horizon + 1, n_states, n_actions))
    for t in reversed(range(horizon)):
        v_next = (pi_e * Q[t + 1]).sum(-1)                     # (S,)
        target = r + gamma * v_next[s2]                        # (N·H,)
        sums = np.zeros((n_states, n_actions))
        np.add.at(sums, (s, a), target)
        Q[t] = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return Q[:horizon]


def dm_estimate(q_hat: np.ndarray, pi_e: np.ndarray, d0: np.ndarray) -> float:
    """Direct method: ``Σ_s d0(s) Σ_a π_e(a|s) Q̂_0(s, a)``; ``q_hat`` ``(H, S, A)`` or ``(S, A)``.

    Lesson 03.1; the direct method, the kind of estimate SOPE's stopping signal is (SOPE digest, "Core idea": what
    "OPE" means here)."""
    q0 = q_hat[0] if q_hat.ndim == 3 else q_hat
    return float(d0 @ (pi_e * q0).sum(-1))


def _q_at_logged(q: np.ndarray, traj: Trajectories, pi_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Q̂_t(s_t, a_t)`` and ``V̂_t(s_t) = Σ_a π_e(a|s_t) Q̂_t(s_t, a)`` at the logged steps, ``(N, H)`` each."""
    t_idx = np.arange(q.shape[0])[None, :]                                                # (1, H)
    return q[t_idx, traj.states, traj.actions], (pi_e[traj.states] * q[t_idx, traj.states]).sum(-1)


def _episodes(traj: Trajectories, idx: np.ndarray) -> Trajectories:
    return Trajectories(traj.states[idx], traj.actions[idx], traj.rewards[idx], traj.next_states[idx], traj.behavior_probs[idx])


def cross_fit_dr_estimate(mdp: TabularMDP, traj: Trajectories, pi_e: np.ndarray, folds: int = 2) -> float:
    """Cross-fitted DR: split the ``N`` episodes into ``folds`` parts; each part's DR terms use a ``Q̂``
    fitted (``fqe_tabular``) on the *other* parts only, so ``Q̂`` is independent of the episodes it corrects
    and DR's control variate keeps mean zero. The estimate is the episode-weighted mean over parts.

    Lesson 03.1; DR with cross-fitting (the sample splitting of Chernozhukov et al. 2018, Double/debiased ML)."""
    n = traj.states.shape[0]
    if not 2 <= folds <= n:
        raise ValueError(f"need 2 <= folds <= N = {n}, got {folds}")
    rho = importance_ratios(traj, pi_e)
    parts = np.array_split(np.arange(n), folds)
    total = 0.0
    for k, part in enumerate(parts):
        rest = np.concatenate([p for j, p in enumerate(parts) if j != k])
        q = fqe_tabular(_episodes(traj, rest), pi_e, mdp.n_states, mdp.n_actions, mdp.gamma, mdp.horizon)
        q_sa, v_s = _q_at_logged(q, _episodes(traj, part), pi_e)
        total += len(part) * dr_estimate(traj.rewards[part], rho[part], q_sa, v_s, mdp.gamma)
    return total / n


def all_estimates(mdp: TabularMDP, traj: Trajectories, pi_e: np.ndarray, cross_fit: bool = False) -> dict[str, float]:
    """Every estimator of this module on one dataset: ``{"DM", "IS", "WIS", "PDIS", "DR"}``, plus
    ``"DR-CF"`` (2-fold cross-fitted DR) when ``cross_fit``.

    Lesson 03.1; the estimators side by side (no paper equation)."""
    rho = importance_ratios(traj, pi_e)
    q = fqe_tabular(traj, pi_e, mdp.n_states, mdp.n_actions, mdp.gamma, mdp.horizon)    # (H, S, A)
    q_sa, v_s = _q_at_logged(q, traj, pi_e)                                               # (N, H) each
    out = {
        "DM": dm_estimate(q, pi_e, mdp.d0),
        "IS": is_estimate(traj.rewards, rho, mdp.gamma),
        "WIS": wis_estimate(traj.rewards, rho, mdp.gamma),
        "PDIS": pdis_estimate(traj.rewards, rho, mdp.gamma),
        "DR": dr_estimate(traj.rewards, rho, q_sa, v_s, mdp.gamma),
    }
    if cross_fit:
        out["DR-CF"] = cross_fit_dr_estimate(mdp, traj, pi_e)
    return out


def estimator_study(mdp: TabularMDP, pi_e: np.ndarray, pi_b: np.ndarray, n_episodes: int, n_repeats: int,
                    seed: int, cross_fit: bool = False) -> dict[str, np.ndarray]:
    """``{name: (n_repeats,)}`` estimates from ``n_repeats`` independent datasets of ``n_episodes``.

    Lesson 03.1; repeated datasets for the bias/variance comparison (no paper equation)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {}
    for _ in range(n_repeats):
        est = all_estimates(mdp, sample_trajectories(mdp, pi_b, n_episodes, rng), pi_e, cross_fit)
        for k, v in est.items():
            out.setdefault(k, []).append(v)
    return {k: np.array(v) for k, v in out.items()}


def bias_variance(estimates: dict[str, np.ndarray], truth: float) -> dict[str, dict[str, float]]:
    """``{name: {"bias", "std", "rmse"}}`` of repeated estimates against the exact value.

    Lesson 03.1; the bias/variance comparison (no paper equation)."""
    res = {}
    for k, v in estimates.items():
        bias = float(v.mean() - truth)
        std = float(v.std())
        res[k] = {"bias": bias, "std": std, "rmse": float(np.sqrt(bias**2 + std**2))}
    return res



def sweep(mdp: TabularMDP, pi_e: np.ndarray, pi_other: np.ndarray, betas: "list[float]", sizes: "list[int]",
          n_repeats: int, seed: int, keep_estimates: bool = False) -> dict[tuple[float, int], dict[str, dict]]:
    """Bias/std/RMSE of every estimator for each behaviour mismatch ``β`` (``π_b = (1−β)π_e + βπ_other``)
    and dataset size ``N``: ``{(β, N): {name: {"bias", "std", "rmse"}}}`` from ``n_repeats`` datasets each.
    With ``keep_estimates`` each entry also holds ``"estimates"``: the ``(n_repeats,)`` raw estimates
    (paired across estimators: the same datasets).

    Lesson 03.1; why a low-variance DM signal suits SOPE's stopping rule (SOPE digest, "Core idea"); no paper
    equation."""
    truth = evaluate_policy(mdp, pi_e)[0]
    out = {}
    for i, beta in enumerate(betas):
        pi_b = mix_policies(pi_e, pi_other, beta)
        for j, n in enumerate(sizes):
            est = estimator_study(mdp, pi_e, pi_b, n, n_repeats, seed + 1000 * i + j)
            out[(beta, n)] = bias_variance(est, truth)
            if keep_estimates:
                for k, v in est.items():
                    out[(beta, n)][k]["estimates"] = v
    return out


@dataclass
class OPELessonConfig:
    """Lesson 03.1's sweep: behaviour mismatch β × dataset size N, ``repeats`` datasets per cell (``sweep``).

    The IS-vs-DM trade-off behind SOPE's choice of a DM signal (SOPE digest, "Core idea")."""

    betas: tuple = (0.1, 0.3, 0.5, 0.7, 0.9)
    """Mismatches β of ``π_b = (1 − β) π_e + β π_uniform``."""
    sizes: tuple = (10, 30, 100, 300)
    """Dataset sizes N (episodes); the lesson's claims use the second largest."""
    repeats: int = 100
    """Independent datasets per (β, N): the bias, sd and paired verdicts are over these."""

    @classmethod
    def for_scale(cls, scale) -> "OPELessonConfig":
        from hdai_lessons.core.scale import by_scale

        return by_scale(scale, smoke=cls(betas=(0.2, 0.8), sizes=(20, 100), repeats=8), toy=cls(),
                        full=cls(sizes=(10, 30, 100, 300, 1000), repeats=500))
