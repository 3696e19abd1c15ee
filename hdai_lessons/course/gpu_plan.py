"""``hdai-lessons gpu-check --plan``: will each full-scale path fit on the GPU? Planned on a CPU.

Each path's real-size architecture is built on PyTorch's ``meta`` device from the small architecture
files in ``data/architectures/`` (no weights, no download, no memory), so parameter counts are
exact. Activation memory is *measured* on the meta device too: a forward pass runs under
``torch.autograd.graph.saved_tensors_hooks`` and every tensor autograd keeps for the backward pass
is counted by its storage size. Costs that are not saved tensors (optimizer state, gradients,
the sampler's KV cache and prefill logits) follow from the shapes.

The plan describes the code as it is (the trainers hold a whole chunk of sequences, without
activation checkpointing); a path that does not fit is reported, not hidden, and the command
exits non-zero. On the meta device ``scaled_dot_product_attention`` takes its math path, which
keeps the attention weights: an upper bound for GPU kernels that do not (flash attention).
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from hdai_lessons.core.paths import data_dir

GiB = 2 ** 30
# The trainer's scoring function, found by name (tier 2; the course tier discovers, never imports up).
RESPONSE_LOGPROBS = "hdai_lessons.lm.sampling:response_logprobs"
MODULES = {  # architecture "class" → where it lives
    "Qwen2ForCausalLM": "transformers", "Qwen3VLForConditionalGeneration": "transformers", "T5EncoderModel": "transformers",
    "CLIPModel": "transformers", "JoyImageEditTransformer3DModel": "diffusers", "FluxTransformer2DModel": "diffusers",
    "AutoencoderKL": "diffusers", "AutoencoderKLWan": "diffusers",
}


def architecture(name: str) -> dict[str, Any]:
    """``data/architectures/<name>.json``: ``{"class": …, "config": {…}, "_source": …}``."""
    path = data_dir() / "architectures" / f"{name}.json"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.json"))
        raise FileNotFoundError(f"no architecture file {path}; known: {', '.join(known)}")
    return json.loads(path.read_text())


def build_on_meta(name: "str | dict", dtype: torch.dtype = torch.float32, device: str = "meta") -> torch.nn.Module:
    """The real class of architecture ``name`` (a file of ``data/architectures/`` or its dict) on
    ``device``: ``"meta"`` (shapes only, the default) or ``"cpu"`` (real tensors, for tests)."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()             # "keep in float32" advice is about loading weights
    spec = architecture(name) if isinstance(name, str) else name
    cls = getattr(importlib.import_module(MODULES[spec["class"]]), spec["class"])
    with torch.device(device):
        if MODULES[spec["class"]] == "transformers":
            config_cls = cls.config_class
            model = cls(config_cls(**spec["config"]))
        else:
            model = cls(**spec["config"])
    return model.to(dtype)


def n_params(model: torch.nn.Module) -> int:
    """Distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def saved_tensor_bytes(fn: Callable[[], Any], model: "torch.nn.Module | None" = None) -> int:
    """Bytes of the activations autograd saves for the backward pass while ``fn()`` runs.

    Each storage counts once (views share it); the parameters of ``model`` are not activations
    (a linear layer saves its weight too) and are left out.
    """
    params = {p.untyped_storage()._cdata for p in model.parameters()} if model is not None else set()
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in params:
            seen[storage._cdata] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


@dataclass
class PathPlan:
    """One full-scale path's planned peak GPU memory, by part (GiB)."""

    lesson: str
    what: str
    params: int
    parts: dict[str, float] = field(default_factory=dict)
    notes: str = ""

    @property
    def total_gib(self) -> float:
        return sum(self.parts.values())

    def fits(self, gpu_gib: float) -> bool:
        return self.total_gib <= gpu_gib


# ------------------------------------------------------------------------------------------ LLM RL
def _decoder_layer_bytes(model, prompt_len: int, seq_len: int, dtype: torch.dtype) -> tuple[int, int]:
    """(saved bytes of one decoder layer, of the final norm + LM head + the trainer's response
    log-probs, ``lm.sampling.response_logprobs``) for one sequence of ``seq_len`` tokens."""
    module, _, name = RESPONSE_LOGPROBS.partition(":")
    response_logprobs = getattr(importlib.import_module(module), name)
    inner = model.model
    hidden = model.config.hidden_size
    x = torch.zeros(1, seq_len, hidden, device="meta", dtype=dtype, requires_grad=True)
    ids = torch.zeros(1, seq_len, device="meta", dtype=torch.long)
    pos = torch.arange(seq_len, device="meta").unsqueeze(0)
    pe = inner.rotary_emb(x, pos)
    layer = saved_tensor_bytes(lambda: inner.layers[0](x, attention_mask=None, position_ids=pos, position_embeddings=pe), model)
    # the trainer scores response positions only: the LM head runs on the last T + 1 positions
    head = saved_tensor_bytes(lambda: response_logprobs(model.lm_head(inner.norm(x)[:, prompt_len - 1:]),
                                                        ids[:, prompt_len - 1:], 1), model)
    return layer, head


def plan_group_rl(lesson: str, what: str, arch: "str | dict", rl, prompt_len: int, mixed_precision: str = "bf16") -> PathPlan:
    """The group-RL trainer (``lm.rl_trainer``) at full size: the larger of its update and its rollout.

    Update: fp32 master weights, gradients and AdamW's two moments (16 B/parameter); the saved
    activations of one forward/backward pass, ``micro_batch_prompts × K`` sequences of
    ``prompt_len + max_new_tokens`` tokens (``prompts_per_step / minibatches × K`` when micro-batching
    is off), in the autocast dtype, and their log-softmax logits at response positions only. With
    ``gradient_checkpointing`` a layer keeps only its input (the hidden states) and one layer at a time
    is recomputed. Rollout: the KV cache of ``prompts_per_step × K`` sequences and the logits of the
    last position only (the sampler keeps no others), in fp32.

    Prompts are counted K times (an upper bound: the trainer runs each prompt once per group).
    """
    act_dtype = torch.bfloat16 if mixed_precision == "bf16" else torch.float32
    model = build_on_meta(arch, act_dtype)
    model.config._attn_implementation = "sdpa"
    P = n_params(model)
    cfg = model.config
    L = prompt_len + rl.max_new_tokens
    seqs = (getattr(rl, "micro_batch_prompts", 0) or rl.prompts_per_step // rl.minibatches) * rl.K   # one pass
    layer, head = _decoder_layer_bytes(model, prompt_len, L, act_dtype)
    if getattr(rl, "gradient_checkpointing", False):
        acts = (cfg.num_hidden_layers * L * cfg.hidden_size * act_dtype.itemsize + layer) * seqs
    else:
        acts = layer * cfg.num_hidden_layers * seqs
    update = {"weights (fp32 master)": 4 * P / GiB, "gradients": 4 * P / GiB, "AdamW moments": 8 * P / GiB,
              "activations": acts / GiB, "logits": head * seqs / GiB}
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    rollout_seqs = rl.prompts_per_step * rl.K
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * L * rollout_seqs * act_dtype.itemsize
    rollout = {"weights (fp32 master)": 4 * P / GiB, "gradients": 4 * P / GiB, "AdamW moments": 8 * P / GiB,
               "KV cache": kv / GiB, "last-position logits": rollout_seqs * cfg.vocab_size * 4 / GiB}   # the sampler keeps only the last position's logits
    plan = PathPlan(lesson, what, P)
    plan.parts = update if sum(update.values()) >= sum(rollout.values()) else rollout
    ckpt = "on" if getattr(rl, "gradient_checkpointing", False) else "off"
    plan.notes = (f"{seqs} sequences × {L} tokens per forward/backward pass ({rl.prompts_per_step} prompts / "
                  f"{rl.minibatches} minibatches, micro-batches of {rl.micro_batch_prompts or 'all'} prompts, "
                  f"K = {rl.K}), checkpointing {ckpt}, {mixed_precision} autocast; rollout peak "
                  f"{sum(rollout.values()):.1f} GiB, update peak {sum(update.values()):.1f} GiB")
    return plan


# ------------------------------------------------------------------------------------------ SAC
def plan_sac(lesson: str, what: str, obs_dim: int, act_dim: int, sac, n_runs: int, batch: int) -> PathPlan:
    """SOPE's SAC population (``sope.sac``): actor and critics per run, fp32 with Adam, one batch of activations."""
    actor = [obs_dim, *sac.hidden, 2 * act_dim]                 # the widths of sope.flops.NetDims
    critic = [obs_dim + act_dim, *sac.hidden, 1]

    def mlp_params(widths: list[int]) -> int:
        return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))

    per_run = mlp_params(actor) + 2 * sac.n_critics * mlp_params(critic)   # critics + their targets
    P = per_run * n_runs
    acts = n_runs * batch * (sum(actor) + sac.n_critics * sum(critic)) * 4 * 4   # ~4 saved fp32 tensors per unit
    plan = PathPlan(lesson, what, P, {"weights": 4 * P / GiB, "gradients + Adam": 12 * P / GiB, "activations": acts / GiB})
    plan.notes = f"{n_runs} runs × (actor {actor}, {sac.n_critics} critics + targets {critic}), batch {batch}"
    return plan


# ------------------------------------------------------------------------------------------ flows
def plan_flux_guidance(lesson: str, what: str, n: int, height: int = 512, width: int = 512, text_tokens: int = 256,
                       gradient_checkpointing: bool = True) -> PathPlan:
    """FMRG/DPS guidance of FLUX.1-schnell: bf16 weights of every component, and the saved
    activations of one differentiable pass through the transformer for ``n`` images (the VJP of
    the control law) — measured per block on the meta device.

    With ``gradient_checkpointing`` (``load_full``'s default) each block keeps only its inputs (the
    image and text token states) and one block at a time is recomputed in the backward pass:
    activations = block inputs × blocks + the largest block's saved tensors.
    """
    dt = torch.bfloat16
    tr = build_on_meta("flux1-schnell-transformer", dt)
    others = {name: n_params(build_on_meta(name, dt)) for name in ("t5-v1_1-xxl-encoder", "clip-vit-large-patch14")}
    P_tr = n_params(tr)
    d = tr.config.num_attention_heads * tr.config.attention_head_dim
    img = (height // 16) * (width // 16)                      # 8× VAE, 2×2 packing
    h = torch.zeros(n, img, d, device="meta", dtype=dt, requires_grad=True)
    e = torch.zeros(n, text_tokens, d, device="meta", dtype=dt, requires_grad=True)
    temb = torch.zeros(n, d, device="meta", dtype=dt)
    rot = tr.pos_embed(torch.zeros(img + text_tokens, 3, device="meta"))
    double = saved_tensor_bytes(lambda: tr.transformer_blocks[0](h, e, temb, image_rotary_emb=rot), tr)
    single = saved_tensor_bytes(lambda: tr.single_transformer_blocks[0](h, e, temb, image_rotary_emb=rot), tr)
    blocks = tr.config.num_layers + tr.config.num_single_layers
    if gradient_checkpointing:
        acts = blocks * n * (img + text_tokens) * d * dt.itemsize + max(double, single)
        how = "blocks recomputed in the backward pass (gradient checkpointing)"
    else:
        acts = double * tr.config.num_layers + single * tr.config.num_single_layers
        how = "every block's activations kept (no checkpointing)"
    P = P_tr + sum(others.values())
    plan = PathPlan(lesson, what, P, {"weights (bf16)": 2 * P / GiB, "transformer activations (VJP)": acts / GiB})
    plan.notes = (f"{n} images at {height}×{width}: {img} image + {text_tokens} text tokens, {how}; transformer "
                  f"{P_tr / 1e9:.1f}B, T5-XXL {others['t5-v1_1-xxl-encoder'] / 1e9:.1f}B, CLIP "
                  f"{others['clip-vit-large-patch14'] / 1e9:.2f}B (T5 freed after the prompt is encoded, counted "
                  "anyway); VAE and its decoder activations not included")
    return plan


# ------------------------------------------------------------------------------------------ unified
def plan_joyimage_edit(lesson: str, what: str, transient_gib: float = 4.0) -> PathPlan:
    """JoyAI-Image-Edit inference in bf16: the MLLM and the MMDiT (no gradients), plus a stated
    allowance for transient activations (no tensors are kept between blocks at inference)."""
    dt = torch.bfloat16
    P_mllm = n_params(build_on_meta("qwen3-vl-8b", dt))
    P_dit = n_params(build_on_meta("joyimage-edit-transformer", dt))
    P = P_mllm + P_dit
    plan = PathPlan(lesson, what, P, {"weights (bf16)": 2 * P / GiB, "transient activations (allowance)": transient_gib})
    plan.notes = f"MLLM {P_mllm / 1e9:.1f}B + MMDiT {P_dit / 1e9:.1f}B; Wan VAE (~0.1B) not included"
    return plan


def _lesson_config(dotted: str):
    """A module's full-scale config, found by name (the course tier never imports a module package
    directly; it discovers them, as the exercise registry and ``core.assets`` do)."""
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name).for_scale("full")


def full_scale_plans() -> list[PathPlan]:
    """The plan of every full-scale path, from each lesson's own full-scale config."""
    rl01 = _lesson_config("hdai_lessons.rlvr.full:FullScaleConfig").rl
    rl02 = rl01                                              # 02.4 trains module 01's run with K = 8 (cat.full)
    sope = _lesson_config("hdai_lessons.sope.benchmark:BenchmarkLessonConfig")
    flux = _lesson_config("hdai_lessons.flows.full:FullScaleLessonConfig")
    return [
        plan_group_rl("01.4", "RLVR (LPO/GRPO) on Qwen2.5-0.5B-Instruct", "qwen2.5-0.5b-instruct", rl01, prompt_len=256),
        plan_group_rl("02.4", "CAT-weighted GRPO on Qwen2.5-0.5B-Instruct", "qwen2.5-0.5b-instruct", rl02, prompt_len=256),
        plan_sac("03.4", f"SOPE on {sope.task} (MuJoCo Hopper: 11-d observation, 3-d action)", 11, 3, sope.train.sac,
                 n_runs=3 * sope.n_seeds, batch=2 * sope.train.batch_per_source),
        plan_flux_guidance("04.5", "FMRG-J guidance of FLUX.1-schnell", n=flux.n, height=flux.height, width=flux.width,
                           text_tokens=flux.max_sequence_length, gradient_checkpointing=flux.gradient_checkpointing),
        plan_joyimage_edit("05.4", "JoyAI-Image-Edit inference"),
    ]


def format_plans(plans: list[PathPlan], gpu_gib: float) -> str:
    """A table: lesson, path, parameters, planned peak, fits or not, and the parts and assumptions."""
    lines = [f"Planned peak GPU memory per full-scale path (target {gpu_gib:g} GiB; meta-device build, no weights):", ""]
    for p in plans:
        verdict = "fits" if p.fits(gpu_gib) else "DOES NOT FIT"
        lines.append(f"{p.lesson}  {p.what}: {p.params / 1e9:.2f}B parameters, planned peak {p.total_gib:.1f} GiB — {verdict}")
        lines.append("      " + ", ".join(f"{k} {v:.1f}" for k, v in p.parts.items()))
        if p.notes:
            lines.append(f"      ({p.notes})")
    return "\n".join(lines)
