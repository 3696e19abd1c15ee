"""The shipped warmed-up tiny LM: the toy ``Qwen2ForCausalLM`` after supervised warm-up on arithmetic.

Lesson 01.3 and Module 02 start RL from it instead of spending their budget on SFT. One safetensors
file (``data/lm/arith_warm.safetensors``, ~0.5 MB) holds the weights; its metadata holds the model
config, the tokenizer alphabet and the task/SFT settings, so it rebuilds with::

    hdai-lessons data build lm-arith-warm      # runs build_warm_arithmetic_lm(out_path, seed)
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path


DATA_NAME = "lm-arith-warm"

#: How the shipped checkpoint was made (recorded in its metadata, read back by ``load_warm_lm``).
WARM_SETTINGS = {"task": {"min_digits": 1, "max_digits": 2, "ops": "+-"},
                 "sft": {"steps": 2000, "batch_size": 64, "lr": 3e-3}, "n_train": 4000, "n_heldout": 200}


def warm_task():
    """The ``ArithmeticTask`` the shipped checkpoint was warmed up on.

    Lessons 01.3, 02.3; no paper equation.
    """
    from hdai_lessons.tasks import ArithmeticTask

    return ArithmeticTask(**WARM_SETTINGS["task"])


def warm_problem_split(seed: int = 0):
    """``(train, held_out)`` problems of the warm-up task (held-out prompts were never trained on).

    Lessons 01.3, 02.3; no paper equation.
    """
    from hdai_lessons.tasks import split_problems

    return split_problems(warm_task(), WARM_SETTINGS["n_train"], WARM_SETTINGS["n_heldout"], seed)


def build_warm_arithmetic_lm(out_path: Path, seed: int) -> None:
    """Generator of ``data/lm/arith_warm.safetensors``: SFT the toy LM on arithmetic, save weights + metadata.

    Lesson 01.3 (the SFT start RLVR begins from); no paper equation.
    """
    from safetensors.torch import save_file

    from hdai_lessons.core.seeding import seed_everything
    from hdai_lessons.lm.sft import sft
    from hdai_lessons.lm.model import TinyLMConfig, build_tiny_lm
    from hdai_lessons.lm.tokenizer import DEFAULT_ALPHABET, build_char_tokenizer

    seed_everything(seed)
    cfg = TinyLMConfig()
    model, tok = build_tiny_lm(cfg, build_char_tokenizer(), seed=seed)
    train, _ = warm_problem_split(seed)
    s = WARM_SETTINGS["sft"]
    losses = sft(model, tok, train, steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"], seed=seed)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    meta = {"config": json.dumps(asdict(cfg)), "alphabet": DEFAULT_ALPHABET, "settings": json.dumps(WARM_SETTINGS),
            "seed": str(seed), "final_sft_loss": f"{sum(losses[-50:]) / 50:.4f}"}
    save_file(state, str(out_path), metadata=meta)


def load_warm_lm(path: "str | Path | None" = None):
    """The shipped warmed-up arithmetic LM: ``(model, tokenizer, info)``.

    ``path`` defaults to the verified shipped file (``data_path("lm-arith-warm")``, which raises with
    the rebuild command when it is missing or corrupt). ``info`` holds the warm-up settings.

    Lessons 01.3, 02.3; no paper equation.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from hdai_lessons.core.data import data_path
    from hdai_lessons.lm.model import TinyLMConfig, build_tiny_lm
    from hdai_lessons.lm.tokenizer import build_char_tokenizer

    path = Path(path) if path is not None else data_path(DATA_NAME)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    cfg = TinyLMConfig(**json.loads(meta["config"]))
    model, tok = build_tiny_lm(cfg, build_char_tokenizer(meta["alphabet"]))
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise RuntimeError(f"{path} does not fit TinyLMConfig {cfg}: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    info = {"settings": json.loads(meta["settings"]), "final_sft_loss": float(meta["final_sft_loss"]),
            "seed": int(meta["seed"])}
    return model, tok, info
