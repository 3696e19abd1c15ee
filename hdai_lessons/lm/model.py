"""The course's tiny causal LM: a real ``transformers`` ``Qwen2ForCausalLM`` built from a small config.

Using the library class (not a from-scratch copy) means the RLVR trainer, the sampler and the
checkpoints handle the tiny model and a downloaded Qwen checkpoint through one interface, and CI
exercises the full-scale code path without any download.

- ``TinyLMConfig.for_scale(scale)`` → the model size per rung of the scale ladder;
- ``build_tiny_lm(cfg, tokenizer, seed)`` → a randomly-initialised ``Qwen2ForCausalLM``;
- ``save_lm`` / ``load_lm`` → ``save_pretrained`` / ``from_pretrained`` of a local folder;
- ``load_pretrained_lm(asset, lesson_id)`` → a real checkpoint (``AutoModelForCausalLM`` +
  ``AutoTokenizer``) from the local snapshot that ``hdai-lessons fetch`` downloaded.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from hdai_lessons.core.scale import by_scale


@dataclass(frozen=True)
class TinyLMConfig:
    """Size of the tiny Qwen2 model (field names follow ``Qwen2Config``).

    Lessons 01.3, 02.3 (the tiny policy); no paper equation.
    """

    hidden_size: int = 64            # model width d
    intermediate_size: int = 256     # MLP width
    num_hidden_layers: int = 2       # transformer blocks
    num_attention_heads: int = 4     # query heads (head dim = hidden_size / heads)
    num_key_value_heads: int = 2     # grouped-query attention: K/V heads
    max_position_embeddings: int = 128  # longest prompt + response

    @classmethod
    def for_scale(cls, scale=None) -> "TinyLMConfig":
        """smoke: 1 layer of width 32; toy: 2 layers of width 64 (~0.1M params); full: 4 × 256."""
        return by_scale(scale,
                        smoke=cls(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                  num_attention_heads=2, num_key_value_heads=1),
                        toy=cls(),
                        full=cls(hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                                 num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512))


def qwen2_config(cfg: TinyLMConfig, tokenizer):
    """The ``Qwen2Config`` for ``cfg`` and a tokenizer (vocabulary size and special ids from it).

    Lessons 01.3, 02.3; no paper equation (the model class of LPO's and CAT's full-scale runs).
    """
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=len(tokenizer), tie_word_embeddings=True,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, **asdict(cfg))


def build_tiny_lm(cfg: "TinyLMConfig | None" = None, tokenizer=None, seed: int = 0):
    """A randomly-initialised ``Qwen2ForCausalLM`` (float32, eval mode off) and its tokenizer.

    Args:
        cfg: model size (default ``TinyLMConfig()``, the toy rung).
        tokenizer: default ``build_char_tokenizer()``.
        seed: initialisation seed (the global RNG is restored afterwards).
    Returns:
        ``(model, tokenizer)``.

    Lessons 01.3, 02.3; no paper equation.
    """
    from transformers import Qwen2ForCausalLM

    from hdai_lessons.lm.tokenizer import build_char_tokenizer

    tokenizer = tokenizer if tokenizer is not None else build_char_tokenizer()
    cfg = cfg or TinyLMConfig()
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Qwen2ForCausalLM(qwen2_config(cfg, tokenizer))
    finally:
        torch.set_rng_state(state)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def num_params(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied embeddings counted once).

    Lesson 01.3; no paper equation.
    """
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def save_lm(model, tokenizer, out_dir: "str | Path") -> Path:
    """``save_pretrained`` model (safetensors) and tokenizer into ``out_dir``; return it.

    Lesson 01.3 (the shipped warm start); no paper equation.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def load_lm(path: "str | Path", dtype: "torch.dtype | None" = None):
    """Load a model + tokenizer saved by ``save_lm`` (or any local HF causal-LM folder), offline.

    Returns ``(model, tokenizer)`` with ``tokenizer.padding_side == "left"`` (batched generation).

    Lesson 01.3; no paper equation.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a saved model folder (no config.json)")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model, _prepare_tokenizer(tokenizer, model)


def _prepare_tokenizer(tokenizer, model=None):
    """Left padding and a pad token (falls back to EOS), as batched sampling needs."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model is not None and getattr(model.generation_config, "pad_token_id", None) is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def load_pretrained_lm(asset, lesson_id: str, dtype: "torch.dtype | None" = torch.bfloat16):
    """A real pretrained causal LM + tokenizer from its local snapshot (no ``trust_remote_code``).

    Args:
        asset: a ``hdai_lessons.core.assets.Asset`` of kind "model" (e.g. Qwen/Qwen2.5-0.5B-Instruct).
        lesson_id: the lesson that registered it; named in the error when it is not downloaded.
        dtype: weights dtype (bf16 on a GPU; pass ``torch.float32`` on a CPU).
    Raises:
        ``MissingAssetError`` naming ``hdai-lessons fetch <lesson_id>`` when it is absent.
    """
    from hdai_lessons.core.assets import require

    return load_lm(require(asset, lesson_id), dtype=dtype)
