"""The tiny causal LM shared by Modules 01 and 02: a real ``Qwen2ForCausalLM`` + a char tokenizer.

``build_tiny_lm`` (random init, by scale), ``save_lm`` / ``load_lm`` (local folders),
``load_pretrained_lm`` (a downloaded Qwen), ``build_char_tokenizer``, and ``pretrained`` (the shipped
SFT-warmed-up arithmetic LM: ``load_warm_lm()``).
"""
from hdai_lessons.lm.model import TinyLMConfig, build_tiny_lm, load_lm, load_pretrained_lm, num_params, qwen2_config, save_lm
from hdai_lessons.lm.tokenizer import build_char_tokenizer

__all__ = ["TinyLMConfig", "build_char_tokenizer", "build_tiny_lm", "load_lm", "load_pretrained_lm",
           "num_params", "qwen2_config", "save_lm"]
