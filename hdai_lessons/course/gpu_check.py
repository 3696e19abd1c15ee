"""``hdai-lessons gpu-check``: run every full-scale path at real size with random weights, and measure it.

No downloads: each path's real-size architecture comes from ``data/architectures/`` (as for
``--plan``) with random weights, and runs a few real steps of the lesson's own code on the GPU:

- 01.4 / 02.4: RLVR / CAT-weighted GRPO steps (rollout of ``prompts_per_step × K`` responses, then
  the update) of the group-RL trainer with the lesson's full-scale ``RLVRConfig``, on random prompts
  of the planned length with random 0/1 rewards (so every group carries signal and the update is
  never a no-op). A random model almost never emits EOS, so every response has the full length:
  the worst case for memory and time.
- 03.4: SAC population updates at Hopper's sizes on random transitions.
- 04.5: one guided FMRG-J step on FLUX.1-schnell (its VJP through the flow map, the VAE decoder and
  CLIP) at the lesson's image size.
- 05.4: one JoyAI-Image-Edit denoising step with classifier-free guidance (the MMDiT twice) after
  the MLLM's forward pass over an instruction.

Each reports measured peak GPU memory (``torch.cuda.max_memory_allocated``), the median step time
and, for the trainers, tokens/s and model FLOP utilisation (model FLOPs: 2·P per generated token,
6·P per trained token; the recomputation of checkpointing is not counted). ``tiny=True`` swaps in
small architectures of the same classes, which is how CI runs every line of this on a CPU.

Course infrastructure for issue 12 (no lesson or paper equation of its own). Like ``gpu_plan``,
it finds the module code it runs by name: the course tier never imports a module package.
"""
from __future__ import annotations

import importlib
import random
import statistics
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from hdai_lessons.course.gpu_plan import GiB, build_on_meta, n_params

# Dense bf16 peak of the GPUs the course is run on (FLOP/s), for model FLOP utilisation.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12}

TINY = {
    "qwen2.5-0.5b-instruct": {"class": "Qwen2ForCausalLM", "config": {
        "vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "tie_word_embeddings": True}},
    "flux1-schnell-transformer": {"class": "FluxTransformer2DModel", "config": {
        "patch_size": 1, "in_channels": 64, "num_layers": 1, "num_single_layers": 1, "attention_head_dim": 16,
        "num_attention_heads": 2, "joint_attention_dim": 32, "pooled_projection_dim": 32, "guidance_embeds": False,
        "axes_dims_rope": [4, 6, 6]}},
    "flux1-schnell-vae": {"class": "AutoencoderKL", "config": {
        "in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4, "block_out_channels": [8, 8, 8, 8], "layers_per_block": 1,
        "latent_channels": 16, "norm_num_groups": 4, "sample_size": 32}},
    "clip-vit-large-patch14": {"class": "CLIPModel", "config": {
        "text_config": {"vocab_size": 99, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
                        "num_attention_heads": 4, "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 1,
                        "pad_token_id": 1},
        "vision_config": {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
                          "num_hidden_layers": 1, "num_attention_heads": 4}, "projection_dim": 16}},
    "joyimage-edit-transformer": {"class": "JoyImageEditTransformer3DModel", "config": {
        "patch_size": [1, 2, 2], "in_channels": 16, "hidden_size": 48, "num_attention_heads": 2, "text_dim": 32,
        "mlp_width_ratio": 2.0, "num_layers": 1, "rope_dim_list": [8, 8, 8], "theta": 10000}},
    "qwen3-vl-8b": {"class": "Qwen3VLForConditionalGeneration", "config": {
        "text_config": {"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
                        "rope_scaling": {"rope_type": "default", "mrope_section": [1, 1, 2]}},
        "vision_config": {"depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "out_hidden_size": 32,
                          "patch_size": 4, "spatial_merge_size": 2, "deepstack_visual_indexes": [0]}}},
}


def _find(dotted: str) -> Any:
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass
class MeasuredPath:
    """One full-scale path run at real size with random weights."""

    lesson: str
    what: str
    params: int
    peak_gib: "float | None"
    step_s: float
    tokens_per_s: "float | None" = None
    mfu: "float | None" = None
    notes: str = ""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(step: Callable[[], Any], device: torch.device, steps: int, warmup: int = 1) -> tuple["float | None", float]:
    """``(peak GiB, median seconds)`` of ``steps`` calls of ``step`` after ``warmup`` untimed ones.
    The peak is CUDA's allocator peak over all calls (None on a CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / GiB if device.type == "cuda" else None
    return peak, statistics.median(times)


def peak_flops(device: torch.device) -> "float | None":
    """The GPU's dense bf16 peak (FLOP/s) when it is one the table knows."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def _arch(name: str, tiny: bool) -> "str | dict":
    return TINY[name] if tiny else name


# ------------------------------------------------------------------------------------------ LLM RL
class _CoinTask:
    """A verifier stand-in: reward 1 with probability 1/2, seeded, whatever the response (so every
    group has signal and every update does real work)."""

    name = "coin"

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def reward(self, problem, completion: str) -> float:
        return float(self.rng.random() < 0.5)


def check_group_rl(lesson: str, what: str, trainer_cls: str, rl, prompt_len: int, device: torch.device,
                   tiny: bool = False, steps: int = 2, **trainer_kwargs) -> MeasuredPath:
    """Trainer steps of ``trainer_cls`` (a ``GroupRLTrainer``, built with ``trainer_kwargs``) with ``rl``
    on a random real-size Qwen2.5-0.5B."""
    tokenizer = _find("hdai_lessons.lm.tokenizer:build_char_tokenizer")()
    Problem = _find("hdai_lessons.tasks.base:Problem")
    LossConfig = _find("hdai_lessons.rlvr.losses:LossConfig")
    torch.manual_seed(0)
    model = build_on_meta(_arch("qwen2.5-0.5b-instruct", tiny), torch.float32, device=str(device))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    rng = random.Random(0)
    digits = "0123456789+-*="
    problems = [Problem(prompt="".join(rng.choice(digits) for _ in range(prompt_len - 1)), answer="0", target="0")
                for _ in range(4 * rl.prompts_per_step)]
    rl = replace(rl, chat_template=False, steps=steps + 1, ckpt_every=0)
    trainer = _find(trainer_cls)(model, tokenizer, _CoinTask(0), problems,
                                 LossConfig(name="grpo", eps=0.2, tau_rule="std", agg="mean"), rl, **trainer_kwargs)
    peak, step_s = measure(trainer.step, device, steps)
    P = n_params(model)
    seqs = rl.prompts_per_step * rl.K
    generated = seqs * rl.max_new_tokens
    trained = seqs * (prompt_len + rl.max_new_tokens) * rl.inner_epochs
    flops = 2 * P * generated + 6 * P * trained
    peak_f = peak_flops(device)
    return MeasuredPath(lesson, what, P, peak, step_s, tokens_per_s=(generated + trained) / step_s,
                        mfu=flops / step_s / peak_f if peak_f else None,
                        notes=f"{seqs} responses × {rl.max_new_tokens} tokens, prompts of {prompt_len} tokens, "
                              f"micro-batches of {rl.micro_batch_prompts or rl.prompts_per_step} prompts, "
                              f"checkpointing {'on' if rl.gradient_checkpointing else 'off'}")


# ------------------------------------------------------------------------------------------ SAC
def check_sac(lesson: str, what: str, obs_dim: int, act_dim: int, sac, n_runs: int, batch: int,
              device: torch.device, steps: int = 20) -> MeasuredPath:
    """SAC population updates (``sope.sac.SACPopulation.update``) on random transitions."""
    SACPopulation = _find("hdai_lessons.sope.sac:SACPopulation")
    pop = SACPopulation(list(range(n_runs)), obs_dim, act_dim, 1.0, sac).to(device)
    g = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(device)

    data = {"obs": rand(n_runs, batch, obs_dim), "act": rand(n_runs, batch, act_dim).clamp(-1, 1),
            "rew": rand(n_runs, batch), "next_obs": rand(n_runs, batch, obs_dim),
            "term": torch.zeros(n_runs, batch, device=device)}
    peak, step_s = measure(lambda: pop.update(data), device, steps)
    return MeasuredPath(lesson, what, n_params(pop), peak, step_s, notes=f"{n_runs} runs, batch {batch}")


# ------------------------------------------------------------------------------------------ flows
def check_flux_guidance(lesson: str, what: str, cfg, device: torch.device, tiny: bool = False,
                        steps: int = 2) -> MeasuredPath:
    """One FMRG-J control (``flows.guidance.fmrg_j_control``) through the 2-step teacher flow map, the
    VAE decoder and CLIP, for ``cfg.n`` images at ``cfg.height × cfg.width``, random weights in bf16."""
    full = importlib.import_module("hdai_lessons.flows.full")
    TeacherFlowMap = _find("hdai_lessons.flows.flowmap:TeacherFlowMap")
    fmrg_j_control = _find("hdai_lessons.flows.guidance:fmrg_j_control")
    dt = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    tr = build_on_meta(_arch("flux1-schnell-transformer", tiny), dt, device=str(device)).requires_grad_(False)
    vae = build_on_meta(_arch("flux1-schnell-vae", tiny), dt, device=str(device)).requires_grad_(False)
    clip = build_on_meta(_arch("clip-vit-large-patch14", tiny), dt, device=str(device)).requires_grad_(False)
    if cfg.gradient_checkpointing:
        tr.enable_gradient_checkpointing()
    height, width = (64, 64) if tiny else (cfg.height, cfg.width)
    joint, pooled = tr.config.joint_attention_dim, tr.config.pooled_projection_dim
    cond = full.PromptEmbeddings(torch.randn(1, cfg.max_sequence_length, joint), torch.randn(1, pooled),
                                 torch.zeros(cfg.max_sequence_length, 3))
    shape = (16, height // 8, width // 8)
    vel = full.DiffusersVelocity(tr, "flux", shape, cond)
    reward = full.CLIPReward(clip, torch.randn(1, clip.config.projection_dim, device=device, dtype=dt),
                             full.LatentDecoder(vae, shape))
    X = TeacherFlowMap(vel, cfg.teacher_substeps)
    x = torch.randn(cfg.n, vel.dim, device=device)
    peak, step_s = measure(lambda: fmrg_j_control(X, reward, x, 0.2, cfg.lam), device, steps)
    P = n_params(tr) + n_params(vae) + n_params(clip)
    return MeasuredPath(lesson, what, P, peak, step_s,
                        notes=f"{cfg.n} images at {height}×{width}, teacher map {cfg.teacher_substeps} NFE, "
                              f"checkpointing {'on' if cfg.gradient_checkpointing else 'off'}; text encoders not loaded "
                              "(random prompt embeddings)")


# ------------------------------------------------------------------------------------------ unified
def check_joyimage_edit(lesson: str, what: str, device: torch.device, tiny: bool = False, size: int = 1024,
                        text_tokens: int = 256, steps: int = 2) -> MeasuredPath:
    """The MLLM's forward pass over an instruction (its last hidden states condition the MMDiT), then
    one guided denoising step of the MMDiT (conditional + unconditional) on a source + target pair."""
    dt = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    mllm = build_on_meta(_arch("qwen3-vl-8b", tiny), dt, device=str(device)).eval()
    dit = build_on_meta(_arch("joyimage-edit-transformer", tiny), dt, device=str(device)).eval()
    text_cfg = getattr(mllm.config, "text_config", mllm.config)
    size = 32 if tiny else size
    text_tokens = 8 if tiny else text_tokens
    ids = torch.randint(0, text_cfg.vocab_size, (1, text_tokens), device=device)
    lat = torch.randn(1, 2, dit.config.in_channels, 1, size // 8, size // 8, device=device, dtype=dt)
    t = torch.full((1,), 500.0, device=device)

    @torch.no_grad()
    def step():
        hidden = mllm(input_ids=ids, output_hidden_states=True).hidden_states[-1]        # (1, T, text_dim)
        cond = hidden[..., :dit.config.text_dim].to(dt)
        vc = dit(hidden_states=lat, timestep=t, encoder_hidden_states=cond).sample
        vu = dit(hidden_states=lat, timestep=t, encoder_hidden_states=torch.zeros_like(cond)).sample
        return vu + 4.0 * (vc - vu)

    peak, step_s = measure(step, device, steps)
    return MeasuredPath(lesson, what, n_params(mllm) + n_params(dit), peak, step_s,
                        notes=f"source + target at {size}², {text_tokens} instruction tokens, CFG (2 MMDiT passes)")


# ------------------------------------------------------------------------------------------ all
def full_scale_checks(device: "str | torch.device" = "cuda", tiny: bool = False) -> list[MeasuredPath]:
    """Every full-scale path, with each lesson's own full-scale config (sizes shrunk when ``tiny``)."""
    from hdai_lessons.course.gpu_plan import _lesson_config

    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("gpu-check runs on a CUDA GPU and none is visible; on a CPU use `hdai-lessons gpu-check --plan`")
    rl01 = _lesson_config("hdai_lessons.rlvr.full:FullScaleConfig").rl
    rl02 = rl01                                              # 02.4 trains module 01's run (cat.full.build_cat_run)
    sope = _lesson_config("hdai_lessons.sope.benchmark:BenchmarkLessonConfig")
    flux = _lesson_config("hdai_lessons.flows.full:FullScaleLessonConfig")
    prompt_len, sac, n_runs, batch = 256, sope.train.sac, 3 * sope.n_seeds, 2 * sope.train.batch_per_source
    if tiny:
        small = dict(prompts_per_step=2, K=2, max_new_tokens=4, minibatches=1, micro_batch_prompts=1)
        rl01, rl02 = replace(rl01, **small), replace(rl02, **small)
        prompt_len, sac, n_runs, batch = 8, replace(sac, hidden=(16, 16)), 2, 8
        flux = replace(flux, n=1)
    checks = [
        lambda: check_group_rl("01.4", "RLVR (LPO/GRPO) on Qwen2.5-0.5B-Instruct", "hdai_lessons.rlvr.trainer:RLVRTrainer",
                       rl01, prompt_len, device, tiny),
        lambda: check_group_rl("02.4", "CAT-weighted GRPO on Qwen2.5-0.5B-Instruct", "hdai_lessons.cat.rl:CATTrainer",
                       rl02, prompt_len, device, tiny, cat=_find("hdai_lessons.cat.full:FULL_ARMS")["cat-maj8"],
                       answer_fn=_find("hdai_lessons.tasks.gsm8k:extract_gsm8k_answer")),
        lambda: check_sac("03.4", "SOPE's SAC population (Hopper sizes)", 11, 3, sac, n_runs, batch, device),
        lambda: check_flux_guidance("04.5", "FMRG-J guidance of FLUX.1-schnell", flux, device, tiny),
        lambda: check_joyimage_edit("05.4", "JoyAI-Image-Edit inference", device, tiny),
    ]
    rows = []
    for check in checks:                     # one path at a time: each one's models are freed before the next
        rows.append(check())
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def format_checks(rows: list[MeasuredPath], gpu_gib: float) -> str:
    """A table: lesson, path, parameters, measured peak, step time, tokens/s and MFU, fits or not."""
    lines = [f"Measured at real size with random weights (target {gpu_gib:g} GiB):", ""]
    for r in rows:
        peak = "n/a" if r.peak_gib is None else f"{r.peak_gib:.1f} GiB"
        extra = ""
        if r.tokens_per_s is not None:
            extra += f", {r.tokens_per_s:,.0f} tokens/s"
        if r.mfu is not None:
            extra += f", MFU {100 * r.mfu:.1f} %"
        fits = "" if r.peak_gib is None else (" — fits" if r.peak_gib <= gpu_gib else " — DOES NOT FIT")
        lines.append(f"{r.lesson}  {r.what}: {r.params / 1e9:.2f}B parameters, peak {peak}, step {r.step_s:.2f} s{extra}{fits}")
        lines.append(f"      ({r.notes})")
    return "\n".join(lines)
