"""The memory-safe, fast trainer path (issue 12.1, 16.2): response-only logits, shared-prefix forward and
sampling, micro-batches with gradient accumulation, activation checkpointing.

Each test compares the new path with the plain one it replaces (full-vocabulary logits at every
position, the whole chunk in one backward), on values and on gradients.
"""
import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from hdai_lessons.cat.rl import CATConfig, CATTrainer
from hdai_lessons.lm import TinyLMConfig, build_tiny_lm
from hdai_lessons.lm.rl_trainer import RLVRConfig
from hdai_lessons.lm.sampling import (position_ids_from_mask, response_logits, response_logprobs, sample_groups,
                                        sequence_logprobs, token_entropy)
from hdai_lessons.rlvr.losses import LossConfig
from hdai_lessons.rlvr.trainer import RLVRTrainer
from hdai_lessons.tasks import ArithmeticTask, split_problems

torch.set_num_threads(1)
TASK = ArithmeticTask(1, 2, "+-")
TRAIN, _ = split_problems(TASK, 200, 10, seed=0)


def toy_lm(seed=0):
    return build_tiny_lm(TinyLMConfig.for_scale("smoke"), seed=seed)


def grads(model):
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in model.parameters()])


def full_logits_reference(model, ro):
    """The plain path: logits over the whole vocabulary at every position, then the causal shift."""
    logits = model(input_ids=ro.input_ids, attention_mask=ro.attention_mask,
                   position_ids=position_ids_from_mask(ro.attention_mask)).logits      # (N, L, V)
    return logits, response_logprobs(logits, ro.input_ids, ro.prompt_len)


@pytest.fixture(scope="module")
def warm():
    from hdai_lessons.lm.pretrained import load_warm_lm, warm_problem_split
    model, tok, _ = load_warm_lm()
    return model, tok, [p.prompt for p in warm_problem_split(0)[0][:6]]


@pytest.mark.parametrize("group_size", [1, 4])
def test_response_only_logprobs_equal_the_full_logits_reference(warm, group_size):
    """Values, entropies and gradients of the response-only (and shared-prefix) forward equal the reference."""
    model, tok, prompts = warm
    torch.manual_seed(0)
    ro = sample_groups(model, tok, prompts, K=4, max_new_tokens=6)
    B, K, T = ro.shape
    m = ro.mask.view(B * K, T)
    assert 0 < m.sum() < m.numel()                       # rows end at different lengths: padding is exercised
    logits, ref = full_logits_reference(model, ro)
    ref_ent = token_entropy(logits[:, ro.prompt_len - 1:-1])
    model.zero_grad()
    (ref * m).sum().backward()
    g_ref = grads(model)
    lp, ent = sequence_logprobs(model, ro.input_ids, ro.attention_mask, ro.prompt_len, with_entropy=True,
                                group_size=group_size)
    assert response_logits(model, ro.input_ids, ro.attention_mask, ro.prompt_len, group_size).shape[:2] == (B * K, T)
    torch.testing.assert_close(lp * m, ref * m, atol=2e-5, rtol=0)
    torch.testing.assert_close(ent * m, ref_ent * m, atol=2e-5, rtol=0)
    model.zero_grad()
    (lp * m).sum().backward()
    torch.testing.assert_close(grads(model), g_ref, atol=1e-4, rtol=1e-5)
    model.zero_grad()
    # and the sampler's own log-probs (shared-prefix prefill, finished rows dropped from the batch) agree
    torch.testing.assert_close(ro.logp.view(B * K, T), (ref * m).detach(), atol=2e-5, rtol=0)


def test_checkpointed_shared_prefix_forward_equals_the_plain_one(warm):
    """Activation checkpointing with a shared prefix: the prompt pass keeps its activations, the response
    pass is checkpointed and reads the prompt's keys/values; values and gradients are the plain path's,
    and the layers' checkpointing flags are restored afterwards."""
    from hdai_lessons.lm.rl_trainer import enable_activation_checkpointing
    model, tok, prompts = warm
    torch.manual_seed(1)
    ro = sample_groups(model, tok, prompts, K=4, max_new_tokens=6)
    m = ro.mask.view(-1, ro.shape[-1])
    ckpt = copy.deepcopy(model)
    enable_activation_checkpointing(ckpt)
    out = {}
    for name, net, gs in (("plain", model, 1), ("ckpt-shared", ckpt, 4), ("ckpt-full", ckpt, 1)):
        net.train()
        net.zero_grad()
        lp = sequence_logprobs(net, ro.input_ids, ro.attention_mask, ro.prompt_len, group_size=gs)
        (lp * m).sum().backward()
        out[name] = (lp.detach() * m, grads(net))
        net.zero_grad()
    for name in ("ckpt-shared", "ckpt-full"):
        torch.testing.assert_close(out[name][0], out["plain"][0], atol=2e-5, rtol=0)
        torch.testing.assert_close(out[name][1], out["plain"][1], atol=1e-4, rtol=1e-5)
    layers = ckpt.model.layers
    assert all(layer.gradient_checkpointing for layer in layers)
    assert not any("_can_checkpoint_with_cache" in vars(layer) for layer in layers)


def naive_sample(model, tok, prompts, K, T, generator):
    """The plain sampler: every row re-run in full at every step (no cache, no sharing, no dropped rows)."""
    enc = tok(prompts, padding=True, return_tensors="pt")
    ids, attn = enc["input_ids"].repeat_interleave(K, 0), enc["attention_mask"].repeat_interleave(K, 0)
    done = torch.zeros(len(ids), dtype=torch.bool)
    out = []
    for _ in range(T):
        logits = model(input_ids=ids, attention_mask=attn, position_ids=position_ids_from_mask(attn)).logits[:, -1]
        nxt = torch.multinomial(torch.softmax(logits.float(), -1), 1, generator=generator).squeeze(-1)
        nxt = nxt.masked_fill(done, tok.pad_token_id)
        out.append(nxt)
        done = done | (nxt == tok.eos_token_id)
        if done.all():
            break
        ids, attn = torch.cat([ids, nxt[:, None]], 1), torch.cat([attn, torch.ones_like(attn[:, :1])], 1)
    return torch.stack(out, 1)


@torch.no_grad()
def test_sampler_draws_what_the_plain_sampler_draws(warm):
    """Shared-prefix prefill, KV cache and finished rows leaving the batch change no draw: with the same
    generator the optimised sampler returns the plain sampler's tokens (rows end at different steps)."""
    model, tok, _ = warm
    from hdai_lessons.lm.pretrained import warm_problem_split
    prompts = [p.prompt for p in warm_problem_split(0)[0][:12]]
    ro = sample_groups(model, tok, prompts, K=4, max_new_tokens=6, generator=torch.Generator().manual_seed(3))
    ref = naive_sample(model, tok, prompts, 4, 6, torch.Generator().manual_seed(3))
    lengths = ro.mask.sum(-1)
    assert lengths.min() < lengths.max()                  # rows left the batch at different steps
    assert torch.equal(ro.response_ids.view(-1, ro.shape[-1]), ref)


def _rollout_and_rewards(trainer, seed=0):
    torch.manual_seed(seed)
    ro, _ = trainer.rollout(TRAIN[:6])
    g = torch.Generator().manual_seed(seed)
    rewards = (torch.rand(ro.shape[:2], generator=g) < 0.5).float()     # mixed groups: non-zero advantages
    rewards[0] = 1.0                                                     # and one constant group
    return ro, rewards


def _chunk_grad(trainer, ro, rewards, old, micro):
    trainer.cfg.micro_batch_prompts = micro
    trainer.model.zero_grad(set_to_none=True)
    extras = trainer.prompt_extras(ro, rewards)
    stats, ent = trainer._backward_chunk(ro, slice(0, ro.shape[0]), old, rewards, extras, with_entropy=True)
    return grads(trainer.model), stats, ent


LOSSES = [LossConfig(name="grpo", agg="token"), LossConfig(name="dr_grpo", agg="constant"),
          LossConfig(name="reinforce_pp", agg="seq_mean"), LossConfig(name="lpo_fwd"), LossConfig(name="lpo_rev", agg="sum")]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda c: f"{c.name}-{c.agg}")
@pytest.mark.parametrize("off_policy", [False, True])
def test_micro_batched_loss_and_gradient_equal_the_whole_batch(loss, off_policy):
    """Batch-coupled normalisers (token mean over the batch, REINFORCE++'s batch statistics) included."""
    model, tok = toy_lm()
    tr = RLVRTrainer(model, tok, TASK, TRAIN, loss, RLVRConfig(prompts_per_step=6, K=4, max_new_tokens=5))
    ro, rewards = _rollout_and_rewards(tr)
    old = None
    if off_policy:                                      # π_b ≠ π_θ: ratios away from 1, some clipped
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            old = (tr._logp(ro, slice(0, 6)) + 0.3 * torch.randn(ro.shape, generator=g)) * ro.mask
    g_whole, s_whole, e_whole = _chunk_grad(tr, ro, rewards, old, 0)
    assert g_whole.abs().max() > 0
    for micro in (1, 4):                                # 4 does not divide 6: a short last micro-batch
        g_micro, s_micro, e_micro = _chunk_grad(tr, ro, rewards, old, micro)
        torch.testing.assert_close(g_micro, g_whole, atol=1e-6, rtol=1e-4)
        assert s_micro.keys() == s_whole.keys()
        for k in s_whole:
            assert s_micro[k] == pytest.approx(s_whole[k], rel=1e-5, abs=1e-6), k
        assert e_micro == pytest.approx(e_whole, rel=1e-5)


@pytest.mark.parametrize("cat", [CATConfig(strategy="passn", N=8), CATConfig(strategy="majority", N=8)],
                         ids=["passn", "majority"])
def test_micro_batched_cat_loss_keeps_the_batch_normalised_weights(cat):
    """CAT's weights are divided by their batch mean: micro-batches must use the whole batch's mean."""
    model, tok = toy_lm()
    tr = CATTrainer(model, tok, TASK, TRAIN, LossConfig(name="grpo", agg="seq_mean"),
                    RLVRConfig(prompts_per_step=6, K=4, max_new_tokens=5), cat=cat)
    ro, rewards = _rollout_and_rewards(tr, seed=2)
    g_whole, s_whole, _ = _chunk_grad(tr, ro, rewards, None, 0)
    assert g_whole.abs().max() > 0 and s_whole["cat_w_max"] > s_whole["cat_w_mean"]   # unequal weights
    g_micro, s_micro, _ = _chunk_grad(tr, ro, rewards, None, 1)
    torch.testing.assert_close(g_micro, g_whole, atol=1e-6, rtol=1e-4)
    assert s_micro == pytest.approx(s_whole, rel=1e-5)
    # a per-micro-batch normalisation (the mistake) gives another gradient
    from hdai_lessons.cat.rl import cat_grpo_loss
    tr.model.zero_grad(set_to_none=True)
    for i in range(6):
        with torch.no_grad():
            c_max = tr.prompt_extras(ro, rewards)["c_max"][i:i + 1]
        lp = tr._logp(ro, slice(i, i + 1))
        loss, _ = cat_grpo_loss(lp, lp.detach(), ro.mask[i:i + 1], rewards[i:i + 1], tr.loss_cfg, cat, c_max)
        (loss / 6).backward()
    assert not torch.allclose(grads(tr.model), g_whole, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("settings", [dict(micro_batch_prompts=2), dict(gradient_checkpointing=True),
                                      dict(shared_prefix=False), dict(micro_batch_prompts=1, gradient_checkpointing=True)],
                         ids=["micro2", "checkpointing", "no-shared-prefix", "micro1+checkpointing"])
def test_trainer_steps_equal_the_plain_path(settings):
    """One optimiser step per update whatever the execution settings: E = 2 inner epochs, 2 minibatches
    (off-policy updates, old log-probs) give the same parameters and metrics as the plain path."""
    base, tok = toy_lm()
    out = {}
    for name, kw in (("plain", dict(shared_prefix=False)), ("new", settings)):
        torch.manual_seed(0)
        tr = RLVRTrainer(copy.deepcopy(base), tok, TASK, TRAIN, LossConfig(name="lpo_fwd"),
                         RLVRConfig(prompts_per_step=4, K=4, inner_epochs=2, minibatches=2, lr=1e-2,
                                    max_new_tokens=5, **kw))
        calls = []

        def counted(*a, _step=tr.optimizer.step, _calls=calls, **k):
            _calls.append(1)
            return _step(*a, **k)
        tr.optimizer.step = counted
        hist = [tr.step() for _ in range(2)]
        out[name] = (torch.cat([p.detach().flatten() for p in tr.model.parameters()]), hist, len(calls))
    assert out["new"][2] == out["plain"][2] == 2 * 2 * 2          # steps × E × minibatches
    torch.testing.assert_close(out["new"][0], out["plain"][0], atol=1e-5, rtol=1e-4)
    for a, b in zip(out["new"][1], out["plain"][1]):
        assert a["reward"] == b["reward"]
        for k in ("loss", "entropy", "sum_abs_c", "grad_norm"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k


def test_execution_settings_may_change_on_resume(tmp_path):
    """Micro-batch size, checkpointing and prefix sharing change no result: a resume may change them."""
    model, tok = toy_lm()
    cfg = RLVRConfig(prompts_per_step=2, K=2, max_new_tokens=3)
    RLVRTrainer(copy.deepcopy(model), tok, TASK, TRAIN, LossConfig(), cfg, run_dir=tmp_path).train(steps=1)
    again = RLVRTrainer(copy.deepcopy(model), tok, TASK, TRAIN, LossConfig(),
                        RLVRConfig(prompts_per_step=2, K=2, max_new_tokens=3, micro_batch_prompts=1,
                                   gradient_checkpointing=True), run_dir=tmp_path)
    assert again.resume() and again.step_count == 1
    with pytest.raises(ValueError, match="micro_batch_prompts"):
        RLVRTrainer(model, tok, TASK, TRAIN, LossConfig(), RLVRConfig(micro_batch_prompts=-1))


def test_launchers_expose_the_memory_flags():
    from hdai_lessons.rlvr import launch
    args = launch.parse_args(["--run-dir", "x", "--micro-batch-prompts", "2", "--gradient-checkpointing", "--no-shared-prefix"])
    assert args.micro_batch_prompts == 2 and args.gradient_checkpointing is True and args.shared_prefix is False


def test_benchmark_breakdown_buckets_nest():
    """The benchmark's clock gives nested calls to the outermost bucket only (no double counting)."""
    path = Path(__file__).resolve().parent.parent / "scripts" / "bench_rlvr_vs_trl.py"
    spec = importlib.util.spec_from_file_location("bench_rlvr_vs_trl_nest", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    clock = bench.Clock()
    clock.side = "ours"
    inner = clock.wrap(lambda: sum(range(20000)), "backward")
    outer = clock.wrap(lambda: inner() + inner(), "forward+loss")
    outer()
    took = clock.take("ours")
    assert took["forward+loss"] > 0 and took["backward"] == 0
