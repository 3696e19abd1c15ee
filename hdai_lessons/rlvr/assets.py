"""What lesson 01.4 downloads at full scale (``hdai-lessons fetch 01.4``)."""
from hdai_lessons.core.assets import Asset, register_assets

MODEL = Asset("model", "Qwen/Qwen2.5-0.5B-Instruct", revision="7ae557604adf67be50417f59c2c2f167def9a775",
              allow_patterns=("*.json", "*.safetensors", "*.txt", "merges.txt", "vocab.json"),
              note="~1 GB in bf16; the policy of the full-scale RLVR run")
DATASET = Asset("dataset", "openai/gsm8k", allow_patterns=("main/*",),
                note="GSM8K main split (7.5k train / 1.3k test), parquet")

register_assets("01.4", [MODEL, DATASET])
