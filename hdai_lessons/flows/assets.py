"""Full-scale downloads of module 04's guidance lessons (``hdai-lessons fetch 04.5``).

04.5 guides FLUX.1-schnell (Apache-2.0, timestep-distilled: its one-step jump is the approximate
flow map) with a CLIP reward. The hub now gates it behind a licence acceptance (``gated`` below
says what to do); SD3.5-medium is gated too. The ungated path is the lesson's self-contained
option: the small SD3-class digits model shipped in ``data/flows/`` (``flows-digits-sd3``), which
runs through the same diffusers code at any scale.
"""
from __future__ import annotations

from hdai_lessons.core.assets import Asset, register_assets

register_assets("04.5", [
    Asset("model", "black-forest-labs/FLUX.1-schnell",
          allow_patterns=("model_index.json", "scheduler/*", "text_encoder/*", "text_encoder_2/*", "tokenizer/*",
                          "tokenizer_2/*", "transformer/*", "vae/*"),
          note="FLUX.1-schnell pipeline (~34 GB in bf16): transformer, VAE, CLIP-L + T5-XXL text encoders",
          gated="accept its licence at https://huggingface.co/black-forest-labs/FLUX.1-schnell, then run "
                "`hf auth login` with a token of that account before `hdai-lessons fetch 04.5`"),
    Asset("model", "openai/clip-vit-large-patch14",
          allow_patterns=("*.json", "*.txt", "model.safetensors"),
          note="CLIP ViT-L/14, the differentiable reward (image–text cosine similarity)"),
])
