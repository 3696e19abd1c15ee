"""What module 05's full-scale lesson downloads (``hdai-lessons fetch 05.4``)."""
from hdai_lessons.core.assets import Asset, register_assets
from hdai_lessons.unified.full import EDIT_REPO

register_assets("05.4", [
    Asset("model", EDIT_REPO, note="JoyAI-Image-Edit for diffusers: Qwen3-VL-8B MLLM (text_encoder), 16B MMDiT, Wan 2.1 VAE; "
                               "~59 GiB of GPU memory in bf16. The MLLM doubles as the understanding model."),
])
