"""The tiny LM and its tokenizer: a real transformers model, offline save/load, the shipped warm checkpoint."""
import pytest
import torch

from hdai_lessons.lm import TinyLMConfig, build_char_tokenizer, build_tiny_lm, load_lm, num_params, save_lm


def test_tokenizer_roundtrip_and_left_padding(tmp_path):
    tok = build_char_tokenizer()
    text = "37+85=122"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == len(text) + 1       # one token per character
    assert tok.decode(ids, skip_special_tokens=True) == text
    batch = tok(["1+1=", "123+45="], padding=True)
    assert batch["attention_mask"][0][:3] == [0, 0, 0]                     # left padding
    assert batch["input_ids"][0][:3] == [tok.pad_token_id] * 3
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text)["input_ids"] == ids and again.padding_side == "left"
    chat = tok.apply_chat_template([{"role": "user", "content": "2+2="}], tokenize=False, add_generation_prompt=True)
    assert chat == "U: 2+2=\nA: "


def test_tokenizer_rejects_bad_alphabet():
    with pytest.raises(ValueError):
        build_char_tokenizer("aab")


def test_tiny_lm_is_qwen2_and_saves_offline(tmp_path):
    from transformers import Qwen2ForCausalLM
    model, tok = build_tiny_lm(TinyLMConfig.for_scale("smoke"), seed=3)
    assert isinstance(model, Qwen2ForCausalLM)
    assert model.config.vocab_size == len(tok) and model.config.eos_token_id == tok.eos_token_id
    x = tok(["12+3=", "4-1="], padding=True, return_tensors="pt")
    logits = model(**x).logits
    assert logits.shape == (2, x["input_ids"].shape[1], len(tok))
    save_lm(model, tok, tmp_path / "m")
    model2, tok2 = load_lm(tmp_path / "m")
    torch.testing.assert_close(model2(**x).logits, logits)
    # same seed, same weights; different seed, different weights
    same, _ = build_tiny_lm(TinyLMConfig.for_scale("smoke"), seed=3)
    other, _ = build_tiny_lm(TinyLMConfig.for_scale("smoke"), seed=4)
    torch.testing.assert_close(same(**x).logits, logits)
    assert not torch.allclose(other(**x).logits, logits)


def test_sizes_grow_with_scale():
    sizes = [num_params(build_tiny_lm(TinyLMConfig.for_scale(s))[0]) for s in ("smoke", "toy")]
    assert sizes[0] < sizes[1] < 1_000_000


def test_load_lm_error_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_lm(tmp_path)


def test_pretrained_asset_missing_names_fetch_command(monkeypatch):
    from hdai_lessons.core.assets import Asset, MissingAssetError
    from hdai_lessons.lm import load_pretrained_lm
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingAssetError, match="hdai-lessons fetch 01.4"):
        load_pretrained_lm(Asset("model", "hdai-test/definitely-not-cached-model"), "01.4")


def test_shipped_warm_lm_solves_some_arithmetic():
    from hdai_lessons.lm.pretrained import load_warm_lm, warm_problem_split, warm_task
    from hdai_lessons.lm.evaluation import evaluate_pass_at_k
    model, tok, info = load_warm_lm()
    _, held = warm_problem_split(info["seed"])
    torch.manual_seed(0)
    res = evaluate_pass_at_k(model, tok, warm_task(), held[:40], n_samples=8, ks=(1, 8), max_new_tokens=5)
    fresh, _ = build_tiny_lm()
    base = evaluate_pass_at_k(fresh, tok, warm_task(), held[:40], n_samples=8, ks=(1, 8), max_new_tokens=5)
    assert res["pass@1"] > 0.1 > base["pass@1"]        # the warm-up taught it something
    assert res["pass@8"] >= res["pass@1"]
