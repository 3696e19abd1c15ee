"""The full-scale memory plan (issue 12): meta-device measurements match real execution on a small case."""
from __future__ import annotations

import pytest
import torch

from hdai_lessons.course.gpu_plan import (PathPlan, build_on_meta, format_plans, n_params, plan_group_rl,
                                          saved_tensor_bytes)
from hdai_lessons.lm.rl_trainer import RLVRConfig

SMALL_QWEN = {"class": "Qwen2ForCausalLM",
              "config": {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 3,
                         "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True}}


def test_meta_build_has_the_real_parameter_count():
    real = build_on_meta(SMALL_QWEN, device="cpu")
    meta = build_on_meta(SMALL_QWEN)
    assert next(meta.parameters()).is_meta and n_params(meta) == n_params(real)
    assert n_params(build_on_meta("qwen2.5-0.5b-instruct")) == 494_032_768      # Qwen2.5-0.5B's published size


def test_planned_activations_match_the_trainers_real_forward_on_cpu():
    """The plan counts one layer and the head on meta tensors; the trainer's real forward on CPU
    (``lm.sampling.sequence_logprobs`` on real weights) saves at most that, and not 20 % less: the
    meta device runs attention's math path (it keeps the attention weights), an upper bound."""
    from hdai_lessons.lm.sampling import sequence_logprobs

    torch.manual_seed(0)
    model = build_on_meta(SMALL_QWEN, device="cpu")
    model.config._attn_implementation = "sdpa"
    rl = RLVRConfig(prompts_per_step=2, K=3, minibatches=1, max_new_tokens=12)
    prompt_len, seqs = 20, 6
    plan = plan_group_rl("test", "small", SMALL_QWEN, rl, prompt_len=prompt_len, mixed_precision="fp32")
    ids = torch.randint(0, 512, (seqs, prompt_len + rl.max_new_tokens))
    mask = torch.ones_like(ids)
    measured = saved_tensor_bytes(lambda: sequence_logprobs(model, ids, mask, prompt_len), model)
    planned = (plan.parts["activations"] + plan.parts["logits"]) * 2 ** 30
    assert measured <= planned <= 1.2 * measured, (planned, measured)


def test_plan_scales_with_the_chunk_and_reports_what_does_not_fit():
    small = plan_group_rl("x", "y", SMALL_QWEN, RLVRConfig(prompts_per_step=2, K=2, max_new_tokens=8), 8, "fp32")
    big = plan_group_rl("x", "y", SMALL_QWEN, RLVRConfig(prompts_per_step=4, K=2, max_new_tokens=8), 8, "fp32")
    assert big.parts["activations"] == pytest.approx(2 * small.parts["activations"])
    text = format_plans([PathPlan("01.4", "a", 10, {"weights": 90.0}), PathPlan("03.4", "b", 1, {"weights": 1.0})], 80)
    assert "01.4  a: 0.00B parameters, planned peak 90.0 GiB — DOES NOT FIT" in text and "— fits" in text


def test_gpu_check_plan_exits_nonzero_when_a_path_does_not_fit(capsys):
    from hdai_lessons.course.cli import main

    assert main(["gpu-check", "--plan", "--gpu-gb", "100000"]) == 0
    out = capsys.readouterr().out
    assert all(lesson in out for lesson in ("01.4", "02.4", "03.4", "04.5", "05.4"))
    assert main(["gpu-check", "--plan", "--gpu-gb", "1"]) == 1


def test_gpu_check_runs_every_full_scale_path_at_tiny_size_on_a_cpu(capsys):
    """The on-GPU check's code path (real classes, each lesson's trainer/guidance/pipeline step) at tiny size."""
    from hdai_lessons.course.cli import main

    assert main(["gpu-check", "--tiny", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for lesson in ("01.4", "02.4", "03.4", "04.5", "05.4"):
        assert f"\n{lesson}  " in out
    assert "tokens/s" in out


def test_gpu_check_without_a_gpu_names_the_alternatives(monkeypatch, capsys):
    import torch

    from hdai_lessons.course.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["gpu-check"]) != 0
    err = capsys.readouterr().err
    assert "gpu-check --plan" in err and "--tiny --device cpu" in err


def test_architecture_files_build_with_their_published_sizes():
    assert 83e6 < n_params(build_on_meta("flux1-schnell-vae")) < 85e6            # FLUX's VAE: 83.8M


def test_micro_batches_and_checkpointing_shrink_the_planned_activations():
    whole = plan_group_rl("x", "y", SMALL_QWEN, RLVRConfig(prompts_per_step=4, K=2, max_new_tokens=8), 8, "fp32")
    micro = plan_group_rl("x", "y", SMALL_QWEN, RLVRConfig(prompts_per_step=4, K=2, max_new_tokens=8,
                                                            micro_batch_prompts=1), 8, "fp32")
    ckpt = plan_group_rl("x", "y", SMALL_QWEN, RLVRConfig(prompts_per_step=4, K=2, max_new_tokens=8,
                                                           micro_batch_prompts=1, gradient_checkpointing=True), 8, "fp32")
    assert micro.parts["activations"] == pytest.approx(whole.parts["activations"] / 4)
    assert ckpt.parts["activations"] < micro.parts["activations"]
