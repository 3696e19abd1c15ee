"""A population's runs trained on several CPU cores at once: the same numbers, in less wall time (lessons 03.2–03.4).

Runs are independent (``train``): each owns its generators, and the population's batched kernels compute each run
on its own, so a run's numbers do not depend on which runs train beside it. A population can therefore be cut into
shards, each trained by ``train_population`` in its own process on one core, and the shards' curves put back in
the original run order: bit for bit what one process gives (a test checks this), in less wall time (an update of
two shards of 6 runs takes about 0.6 of one of 12 on this course's 2-core machine).

- Runs that share a prefix (``prefix_key``: same seed, prior data and τ) stay in one shard, so
  ``TrainConfig.share_prefix`` still trains that prefix once.
- The calling process trains the first shard (with its progress bar); the others run in spawned processes, one
  torch thread each.
- The merged ``TrainResult.state`` is what one process leaves too: the shards' populations, replay buffers and
  generators joined in run order (``SACPopulation.concat``, ``ReplayBuffer.concat``).
- With checkpoints, or prior datasets of different sizes (a population cuts them to the shortest, so a shard would
  differ), training stays in one process.

Course machinery (no paper counterpart: the paper trains one run per job).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from hdai_lessons.sope.buffers import ReplayBuffer
from hdai_lessons.sope.phases import PhaseLog
from hdai_lessons.sope.sac import SACPopulation
from hdai_lessons.sope.train import RunSpec, TrainConfig, TrainResult, prefix_key, train_population


def shard_runs(specs: list[RunSpec], workers: int) -> list[list[int]]:
    """At most ``workers`` shards of run indices, balanced by run count; runs with the same ``prefix_key`` share one.

    Groups go largest first to the shard holding the fewest runs; each shard lists its runs in increasing order
    and the shards are ordered by their first run."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault(prefix_key(s), []).append(i)
    shards: list[list[int]] = [[] for _ in range(min(workers, len(groups)))]
    for g in sorted(groups.values(), key=lambda g: (-len(g), g[0])):   # stable: ties keep run order
        min(shards, key=len).extend(g)
    return sorted((sorted(s) for s in shards if s), key=lambda s: s[0])


def _merge_state(states: list[dict], shards: list[list[int]], n: int) -> dict:
    """The shards' ``TrainResult.state`` dicts joined into the one a single population leaves, runs in order.

    A population's prior buffer has a row per run; the rows of runs that use no prior data are placeholders, never
    sampled (``train._prior_buffer``). A shard without any prior buffer gets placeholder rows here too."""
    pos = {r: i for i, r in enumerate(r for idx in shards for r in idx)}
    order = [pos[r] for r in range(n)]                                          # run → its row in the shards' concat
    use_prior = torch.cat([s["use_prior"] for s in states])[order]
    with_prior = [s["prior"] for s in states if s["prior"] is not None]
    prior = None
    if with_prior:
        placeholder = with_prior[0].select([0])
        prior = ReplayBuffer.concat([s["prior"] if s["prior"] is not None else placeholder.select([0] * len(idx))
                                     for s, idx in zip(states, shards)]).select(order)
    gens = [g for s in states for g in s["gens"]]
    return {"population": SACPopulation.concat([s["population"] for s in states]).select(order),
            "online": ReplayBuffer.concat([s["online"] for s in states]).select(order),
            "prior": prior, "use_prior": use_prior, "gens": [gens[i] for i in order]}


def merge_results(parts: list[TrainResult], shards: list[list[int]], specs: list[RunSpec]) -> TrainResult:
    """One ``TrainResult`` for ``specs`` from ``parts[k]``, the result of the runs ``shards[k]`` (in that order).

    Per-run curves go back to their rows. A phase (one ``PhaseLog`` per env step at which any shard ran one) gets
    length and check count 0 for the runs of a shard without it, as in one population, and its validation trace
    is the union of the shards' check points with ``nan`` where a run was not in its phase. The states are joined
    (``_merge_state``) when every part has one."""
    n = len(specs)
    steps = parts[0].steps
    if any(p.steps != steps for p in parts):
        raise ValueError("the shards were evaluated at different steps; they must share one TrainConfig")

    def rows(field: str) -> np.ndarray:
        out = np.empty((n, len(steps)))
        for p, idx in zip(parts, shards):
            out[idx] = getattr(p, field)
        return out

    logs_at = [{log.env_step: log for log in p.phases} for p in parts]
    phases = []
    for env_step in sorted(set().union(*logs_at)):
        lengths, checks = [0] * n, [0] * n
        trace: dict[int, list[float]] = {}
        for at, idx in zip(logs_at, shards):
            log = at.get(env_step)
            if log is None:
                continue
            for j, r in enumerate(idx):
                lengths[r], checks[r] = log.lengths[j], (log.checks[j] if log.checks else 0)
            for e, row in zip(log.trace_e, log.trace_J):
                merged = trace.setdefault(e, [float("nan")] * n)
                for j, r in enumerate(idx):
                    merged[r] = row[j]
        trace_e = sorted(trace)
        phases.append(PhaseLog(env_step, lengths, trace_e, [trace[e] for e in trace_e], checks))
    state = _merge_state([p.state for p in parts], shards, n) if all(p.state is not None for p in parts) else None
    return TrainResult(list(specs), list(steps), rows("returns"), rows("online_updates"), rows("critic_updates"),
                       rows("flops"), phases, state)


def _train_shard(conn) -> None:
    """A spawned worker's job: receive ``(specs, cfg, priors)`` through ``conn``, train on one torch thread, send
    ``("ok", result)`` (state included) or ``("error", traceback text)``, then wait for the parent's receipt before
    exiting (tensors travel as shared-memory handles that this process serves until then)."""
    import traceback

    torch.set_num_threads(1)
    try:
        specs, cfg, priors = conn.recv()
        message = ("ok", train_population(specs, cfg, priors))
    except Exception:
        message = ("error", traceback.format_exc())
    conn.send(message)
    conn.recv()
    conn.close()


def _send_job(conn, job: tuple) -> None:
    """Send a worker its job from a thread: the send waits until the worker has started and reads it, and the
    caller trains its own shard meanwhile. A worker that died first is reported by ``_receive``."""
    import threading

    def send() -> None:
        try:
            conn.send(job)
        except OSError:
            pass

    threading.Thread(target=send, daemon=True).start()


def _receive(conn, proc) -> TrainResult:
    """The result a worker sends (over the pipe ``train_sharded`` opened to it); a clear error if it failed or died
    without sending one."""
    try:
        status, payload = conn.recv()
        conn.send("received")
    except (EOFError, OSError):
        proc.join()
        raise RuntimeError(
            f"a training worker process exited (code {proc.exitcode}) without a result. If you called "
            "train_sharded(..., workers>1) from a script, put the call under `if __name__ == \"__main__\":` "
            "(worker processes are spawned and import your script), or use workers=1.") from None
    if status != "ok":
        raise RuntimeError(f"a training worker process failed:\n{payload}")
    return payload


def _one_process_only(specs: list[RunSpec], cfg: TrainConfig, priors: dict) -> bool:
    """Checkpoints (one directory, one resumable run) and prior datasets of different sizes keep training in one process."""
    used = {s.prior for s in specs if s.prior is not None and s.arm != "SAC"}
    sizes = {len(priors[name]["observations"]) for name in used if name in priors}
    return bool(cfg.checkpoint_dir) or len(sizes) > 1


def train_sharded(specs: list[RunSpec], cfg: TrainConfig, priors: "dict | None" = None, workers: int = 2) -> TrainResult:
    """``train_population(specs, cfg, priors)`` split over up to ``workers`` processes (``shard_runs``), merged back:
    the same result, bit for bit. Lessons pass ``workers=ctx.threads``, the cores they were given.

    Falls back to one process when ``workers`` is 1, when the runs form one shard, with checkpoints, or with prior
    datasets of different sizes."""
    import multiprocessing

    from hdai_lessons.core.device import one_thread

    priors = priors or {}
    shards = shard_runs(specs, workers)
    if len(shards) <= 1 or _one_process_only(specs, cfg, priors):
        return train_population(specs, cfg, priors)
    quiet = replace(cfg, show_progress=False)
    ctx = multiprocessing.get_context("spawn")          # spawn: safe beside torch's threads, the same on every OS
    started, done = [], False
    try:
        for idx in shards[1:]:
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_train_shard, args=(theirs,), daemon=True)
            proc.start()
            theirs.close()                                # the worker holds the only other end: EOF if it dies
            started.append((mine, proc))
            _send_job(mine, ([specs[i] for i in idx], quiet, priors))
        with one_thread():                                # this process is one of the workers
            first = train_population([specs[i] for i in shards[0]], cfg, priors)
        parts = [first] + [_receive(conn, proc) for conn, proc in started]
        done = True
    finally:
        for conn, proc in started:
            if not done:                                  # an error or an interrupt: stop the other shards now
                proc.terminate()
            proc.join()
            conn.close()
    return merge_results(parts, shards, specs)
