"""Full-scale downloads of module 04's guidance lessons (``hdai-lessons fetch 04.5``).

04.5 guides FLUX.1-schnell (Apache-2.0, ungated, timestep-distilled: its one-step jump is the
approximate flow map) with a CLIP reward; SD3.5-medium is the alternative (gated: accept its
licence on the hub and ``hf auth login`` first, then fetch it by hand with the same command).
"""
from __future__ import annotations

from hdai_lessons.core.assets import Asset, register_assets

register_assets("04.5", [
    Asset("model", "black-forest-labs/FLUX.1-schnell",
          allow_patterns=("model_index.json", "scheduler/*", "text_encoder/*", "text_encoder_2/*", "tokenizer/*",
                          "tokenizer_2/*", "transformer/*", "vae/*"),
          note="FLUX.1-schnell pipeline (~34 GB in bf16): transformer, VAE, CLIP-L + T5-XXL text encoders"),
    Asset("model", "openai/clip-vit-large-patch14",
          allow_patterns=("*.json", "*.txt", "model.safetensors"),
          note="CLIP ViT-L/14, the differentiable reward (image–text cosine similarity)"),
])
