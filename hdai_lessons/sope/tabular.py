"""A small stochastic gridworld with exact finite-horizon policy evaluation (lesson 03.1).

The MDP is tabular, so every quantity an off-policy estimator tries to recover — the value
``J(π) = E[Σ_{t<H} γ^t r_t]`` of a target policy — can be computed *exactly* by backward induction.
That is the ground truth lesson 03.1 compares DM/FQE, IS, WIS, PDIS and DR against.

Layout (``size × size`` cells, row-major state ids ``s = row·size + col``):

- start: the top-left cell; goal: bottom-right (reward +1 on entering, then absorbing);
- a pit in the middle row (reward −1 on entering, then absorbing);
- actions 0..3 = up, right, down, left; with probability ``slip`` the move goes in a random
  direction instead; moving into a wall leaves the agent in place;
- a small step cost on every non-absorbing step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])  # up, right, down, left: (drow, dcol)


@dataclass
class TabularMDP:
    """A finite MDP with horizon ``H``.

    Attributes:
        P: ``(S, A, S)`` transition probabilities ``P(s'|s, a)``.
        R: ``(S, A, S)`` reward ``r(s, a, s')``.
        d0: ``(S,)`` initial-state distribution.
        gamma: discount; horizon: episode length ``H``.

    Lesson 03.1; the ground truth for the OPE estimators, not part of SOPE (no paper equation).
    """

    P: np.ndarray
    R: np.ndarray
    d0: np.ndarray
    gamma: float
    horizon: int

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    @property
    def expected_reward(self) -> np.ndarray:
        """``(S, A)``: ``E_{s'~P(·|s,a)} r(s, a, s')``."""
        return (self.P * self.R).sum(-1)


def make_gridworld(size: int = 5, slip: float = 0.1, step_cost: float = 0.02, gamma: float = 0.95,
                   horizon: int = 20) -> TabularMDP:
    """The lesson's gridworld (see the module docstring); ``S = size²``, ``A = 4``.

    Lesson 03.1; not part of SOPE: a small MDP whose values are exact (no paper equation)."""
    if size < 3:
        raise ValueError(f"size must be at least 3, got {size}")
    S, A = size * size, 4
    goal, pit = S - 1, (size // 2) * size + size // 2 - (1 if size > 3 else 0)
    absorbing = {goal, pit}
    P = np.zeros((S, A, S))
    R = np.zeros((S, A, S))
    for s in range(S):
        if s in absorbing:
            P[s, :, s] = 1.0
            continue
        r, c = divmod(s, size)
        for a in range(A):
            for a_eff in range(A):
                p = (1 - slip) * (a_eff == a) + slip / A
                rr, cc = np.clip([r + MOVES[a_eff, 0], c + MOVES[a_eff, 1]], 0, size - 1)
                s2 = int(rr * size + cc)
                P[s, a, s2] += p
            for s2 in range(S):
                R[s, a, s2] = -step_cost + (1.0 if s2 == goal else 0.0) - (1.0 if s2 == pit else 0.0)
    d0 = np.zeros(S)
    d0[0] = 1.0
    return TabularMDP(P=P, R=R, d0=d0, gamma=gamma, horizon=horizon)


def evaluate_policy(mdp: TabularMDP, pi: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Exact finite-horizon evaluation by backward induction.

    ``Q_t(s,a) = r̄(s,a) + γ Σ_{s'} P(s'|s,a) V_{t+1}(s')``, ``V_t(s) = Σ_a π(a|s) Q_t(s,a)``, ``V_H = 0``.

    Args:
        pi: ``(S, A)`` a stationary stochastic policy (rows sum to 1).
    Returns:
        ``(J, Q, V)``: ``J = Σ_s d0(s) V_0(s)``; ``Q`` of shape ``(H, S, A)``; ``V`` of shape ``(H+1, S)``.

    Lesson 03.1; the exact ``J(π_e)`` every estimator is compared with (finite-horizon dynamic programming; no SOPE
    equation).
    """
    _check_policy(mdp, pi)
    H, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    rbar = mdp.expected_reward
    Q = np.zeros((H, S, A))
    V = np.zeros((H + 1, S))
    for t in reversed(range(H)):
        Q[t] = rbar + mdp.gamma * mdp.P @ V[t + 1]      # (S, A)
        V[t] = (pi * Q[t]).sum(-1)                      # (S,)
    return float(mdp.d0 @ V[0]), Q, V


def optimal_q(mdp: TabularMDP) -> np.ndarray:
    """``(S, A)``: the optimal ``Q_0`` by finite-horizon value iteration.

    Lesson 03.1; builds the target policy π_e (no SOPE equation)."""
    V = np.zeros(mdp.n_states)
    rbar = mdp.expected_reward
    Q = np.zeros_like(rbar)
    for _ in range(mdp.horizon):
        Q = rbar + mdp.gamma * mdp.P @ V
        V = Q.max(-1)
    return Q


def softmax_policy(q: np.ndarray, temperature: float) -> np.ndarray:
    """``(S, A)``: ``π(a|s) ∝ exp(q(s,a)/temperature)``.

    Lesson 03.1; the target policy π_e (no SOPE equation)."""
    z = q / temperature
    z = z - z.max(-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(-1, keepdims=True)


def mix_policies(pi_a: np.ndarray, pi_b: np.ndarray, beta: float) -> np.ndarray:
    """``(S, A)``: ``(1 − β) π_a + β π_b`` — the lesson's knob for behaviour/target mismatch.

    Lesson 03.1 (no SOPE equation)."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    return (1 - beta) * pi_a + beta * pi_b


def uniform_policy(mdp: TabularMDP) -> np.ndarray:
    """Lesson 03.1; the uniform policy mixed into π_b (no SOPE equation)."""
    return np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)


@dataclass
class Trajectories:
    """``N`` episodes of length ``H`` logged by a behaviour policy; every array is ``(N, H)``.

    Lesson 03.1; the logged data every OPE estimator reads (no SOPE equation)."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_states: np.ndarray
    behavior_probs: np.ndarray   # π_b(a_t | s_t)

    @property
    def n(self) -> int:
        return self.states.shape[0]


def sample_trajectories(mdp: TabularMDP, pi_b: np.ndarray, n: int, rng: np.random.Generator) -> Trajectories:
    """Roll out ``n`` episodes of ``π_b`` in parallel (vectorised over episodes).

    Lesson 03.1; the logged data of the OPE experiment (no SOPE equation)."""
    _check_policy(mdp, pi_b)
    H = mdp.horizon
    S = np.zeros((n, H), dtype=np.int64)
    A_ = np.zeros((n, H), dtype=np.int64)
    R = np.zeros((n, H))
    S2 = np.zeros((n, H), dtype=np.int64)
    s = rng.choice(mdp.n_states, size=n, p=mdp.d0)
    for t in range(H):
        a = _sample_rows(pi_b[s], rng)                     # (n,)
        s2 = _sample_rows(mdp.P[s, a], rng)                # (n,)
        S[:, t], A_[:, t], S2[:, t] = s, a, s2
        R[:, t] = mdp.R[s, a, s2]
        s = s2
    return Trajectories(S, A_, R, S2, pi_b[S, A_])


def _sample_rows(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of ``probs`` ``(n, K)`` → ``(n,)``."""
    cdf = probs.cumsum(-1)
    u = rng.random((probs.shape[0], 1))
    return np.minimum((u > cdf).sum(-1), probs.shape[1] - 1)


def _check_policy(mdp: TabularMDP, pi: np.ndarray) -> None:
    if pi.shape != (mdp.n_states, mdp.n_actions):
        raise ValueError(f"policy must have shape (S, A) = {(mdp.n_states, mdp.n_actions)}, got {pi.shape}")
    if not np.allclose(pi.sum(-1), 1.0, atol=1e-6) or (pi < 0).any():
        raise ValueError("policy rows must be probability distributions (non-negative, summing to 1)")
