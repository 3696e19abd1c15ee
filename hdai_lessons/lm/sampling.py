"""Batched sampling of K responses per prompt, with token log-probs and response masks.

The rollout half of an RLVR iteration: left-pad B prompts, repeat each K times, sample up to
``max_new_tokens`` tokens per row with a KV cache (temperature / top-p), stop a row at its EOS, and
return everything the update needs in ``(B, K, T)`` layout. ``sequence_logprobs`` recomputes the
token log-probs of given responses under a model (with or without grad) — the trainer calls it for
π_b (``old_logp``, no grad) and for π_θ at every inner update.

Works with any ``transformers`` causal LM (the tiny ``Qwen2ForCausalLM`` or a real Qwen).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass
class Rollout:
    """K sampled responses for each of B prompts.

    Attributes:
        input_ids: ``(B*K, P+T)`` left-padded prompt followed by the response (rows grouped by prompt:
            row ``b*K + k`` is response k of prompt b).
        attention_mask: ``(B*K, P+T)`` 1 for real prompt tokens and every response position up to
            and including EOS; 0 for left padding and after EOS.
        prompt_len: P, the padded prompt length (responses start at column P).
        response_ids: ``(B, K, T)`` sampled token ids (``pad`` after EOS).
        mask: ``(B, K, T)`` float, 1.0 for response tokens up to and including the first EOS.
        logp: ``(B, K, T)`` log-probs of the sampled tokens under the sampling model (float32, no grad;
            0 where ``mask`` is 0). Includes the temperature: log softmax(logits / T).
        texts: B lists of K decoded responses (special tokens removed).

    Lesson 01.3 (exercises 01.3.x); the sampling and π(y|x) = Π_t π(y_t | x, y_<t) of LPO's setup.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prompt_len: int
    response_ids: torch.Tensor
    mask: torch.Tensor
    logp: torch.Tensor
    texts: list[list[str]]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.response_ids.shape)  # type: ignore[return-value]


def response_mask(response_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1.0 for tokens up to and including the first ``eos_id`` in each row, 0.0 after it.

    Args:
        response_ids: ``(..., T)`` sampled token ids.
    Returns:
        ``(..., T)`` float mask. A row without EOS is all ones (truncated at ``max_new_tokens``).

    Example: ``response_mask(tensor([[5, 2, 7, 2]]), eos_id=2)`` → ``[[1., 1., 0., 0.]]``.

    Lesson 01.3 (exercises 01.3.x); the sampling and π(y|x) = Π_t π(y_t | x, y_<t) of LPO's setup.
    """
    is_eos = (response_ids == eos_id).long()
    eos_before = torch.cumsum(is_eos, dim=-1) - is_eos  # (..., T) number of EOS strictly before t
    return (eos_before == 0).float()


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids for a left-padded batch: 0 at each row's first real token; pads get 0.

    Args:
        attention_mask: ``(N, L)`` 0/1.
    Returns:
        ``(N, L)`` long. Example: ``[[0, 0, 1, 1, 1]]`` → ``[[0, 0, 0, 1, 2]]``.

    Lesson 01.3 (exercises 01.3.x); the sampling and π(y|x) = Π_t π(y_t | x, y_<t) of LPO's setup.
    """
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.clamp_min(0)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] per position.

    Args:
        logits: ``(N, T, V)``; position t predicts ``targets[:, t]``.
        targets: ``(N, T)`` token ids.
    Returns:
        ``(N, T)`` float32 log-probs.

    Lesson 01.3 (exercises 01.3.x); the sampling and π(y|x) = Π_t π(y_t | x, y_<t) of LPO's setup.
    """
    logits = logits.float()
    return torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)


def response_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """Log-probs of the response tokens from a full-sequence forward pass (the causal shift).

    The logit at column j predicts token j + 1, so the response tokens (columns P .. L−1) are scored
    by the logits at columns P−1 .. L−2.

    Args:
        logits: ``(N, L, V)`` from ``model(input_ids).logits``.
        input_ids: ``(N, L)``: prompt (columns < P) then response.
        prompt_len: P ≥ 1.
    Returns:
        ``(N, L − P)`` float32 ``log π(y_t | x, y_<t)``.

    Lesson 01.3 (exercises 01.3.x); the sampling and π(y|x) = Π_t π(y_t | x, y_<t) of LPO's setup.
    """
    if not 1 <= prompt_len < input_ids.shape[1]:
        raise ValueError(f"prompt_len must be in [1, {input_ids.shape[1] - 1}], got {prompt_len}")
    return token_logprobs(logits[:, prompt_len - 1:-1, :], input_ids[:, prompt_len:])


def masked_token_entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean policy entropy over real response tokens (nats): the "entropy" curve of RLVR runs.

    Args:
        logits: ``(N, T, V)`` logits at the response positions; mask: ``(N, T)`` 1 for real tokens.
    Returns:
        a 0-d tensor ``Σ_{n,t} m H(softmax(logits[n,t])) / Σ m`` (0 when the mask is empty).

    Lesson 01.3 (exercises 01.3.x); the sampling and π(y|x) = Π_t π(y_t | x, y_<t) of LPO's setup.
    """
    m = mask.to(torch.float32)
    return (token_entropy(logits) * m).sum() / m.sum().clamp_min(1.0)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) per position: ``(N, T, V)`` → ``(N, T)`` (nats).

    Lesson 01.3 (exercises 01.3.x); the sampling and π(y|x) = Π_t π(y_t | x, y_<t) of LPO's setup.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def encode_prompts(tokenizer, prompts: Sequence[str], device: "torch.device | str" = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``(input_ids, attention_mask)``, both ``(B, P)``, for already-formatted prompts.

    Lesson 01.3 (exercises 01.3.x); the sampling and π(y|x) = Π_t π(y_t | x, y_<t) of LPO's setup.
    """
    if tokenizer.padding_side != "left":
        raise ValueError("batched sampling needs tokenizer.padding_side == 'left' (set it, or use load_lm)")
    enc = tokenizer(list(prompts), padding=True, return_tensors="pt", add_special_tokens=True)
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


@torch.no_grad()
def sample_groups(model, tokenizer, prompts: Sequence[str], K: int, max_new_tokens: int,
                  temperature: float = 1.0, top_p: float = 1.0,
                  generator: "torch.Generator | None" = None) -> Rollout:
    """Sample K responses to each prompt (the rollout of one RLVR iteration).

    Args:
        model: a ``transformers`` causal LM (unwrapped; eval/train mode is left unchanged).
        tokenizer: its tokenizer, ``padding_side="left"``; prompts are already chat-formatted.
        prompts: B prompt strings.
        K: responses per prompt (the group size).
        max_new_tokens: T, the response length limit.
        temperature, top_p: sampling temperature (> 0) and nucleus mass (0 < top_p ≤ 1).
        generator: a ``torch.Generator`` on the model's device for reproducible draws.
    Returns:
        a ``Rollout`` whose ``logp`` are log softmax(logits / temperature) of the drawn tokens.

    Lesson 01.3 (exercises 01.3.x); the sampling and π(y|x) = Π_t π(y_t | x, y_<t) of LPO's setup.
    """
    if K < 1 or max_new_tokens < 1:
        raise ValueError(f"need K ≥ 1 and max_new_tokens ≥ 1, got K={K}, max_new_tokens={max_new_tokens}")
    if not temperature > 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature > 0 and 0 < top_p ≤ 1, got {temperature}, {top_p}")
    device = next(model.parameters()).device
    ids, attn = encode_prompts(tokenizer, prompts, device)            # (B, P)
    B, P = ids.shape
    ids = ids.repeat_interleave(K, dim=0)                             # (B*K, P), row b*K+k
    attn = attn.repeat_interleave(K, dim=0)
    N = B * K
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    out_tokens = torch.full((N, max_new_tokens), pad, dtype=torch.long, device=device)
    out_logp = torch.zeros(N, max_new_tokens, device=device)
    done = torch.zeros(N, dtype=torch.bool, device=device)
    from transformers import DynamicCache

    cache = DynamicCache()
    # transformers ≥ 5.2x names the argument ``cache`` (``past_key_values`` is deprecated)
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    cur_ids, cur_attn = ids, attn
    pos = position_ids_from_mask(attn)                                # (B*K, P)
    for t in range(max_new_tokens):
        out = model(input_ids=cur_ids, attention_mask=cur_attn, position_ids=pos,
                    use_cache=True, **{cache_kw: cache})
        cache = out[cache_kw]
        logits = out.logits[:, -1, :].float() / temperature           # (N, V)
        logp_all = torch.log_softmax(logits, dim=-1)
        probs = logp_all.exp()
        if top_p < 1.0:
            probs = _top_p_filter(probs, top_p)
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (N,)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        out_tokens[:, t] = nxt
        out_logp[:, t] = torch.where(done, torch.zeros(()), logp_all.gather(-1, nxt[:, None]).squeeze(-1))
        done = done | (nxt == eos)
        if bool(done.all()):
            out_tokens, out_logp = out_tokens[:, : t + 1], out_logp[:, : t + 1]
            break
        cur_attn = torch.cat([cur_attn, torch.ones(N, 1, dtype=cur_attn.dtype, device=device)], dim=1)
        cur_ids = nxt[:, None]
        pos = pos[:, -1:] + 1                                         # (N, 1)
    T = out_tokens.shape[1]
    mask = response_mask(out_tokens, eos)                             # (N, T)
    full_ids = torch.cat([ids, out_tokens], dim=1)                    # (N, P+T)
    full_attn = torch.cat([attn, mask.long()], dim=1)
    texts = tokenizer.batch_decode(out_tokens, skip_special_tokens=True)
    return Rollout(
        input_ids=full_ids, attention_mask=full_attn, prompt_len=P,
        response_ids=out_tokens.view(B, K, T), mask=mask.view(B, K, T),
        logp=(out_logp * mask).view(B, K, T),
        texts=[texts[b * K:(b + 1) * K] for b in range(B)],
    )


def _top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail of each row outside the smallest set with mass ≥ ``top_p``: ``(N, V)`` → ``(N, V)``."""
    sorted_p, idx = probs.sort(dim=-1, descending=True)
    keep = sorted_p.cumsum(-1) - sorted_p < top_p                     # always keeps the top token
    return torch.zeros_like(probs).scatter(-1, idx, sorted_p * keep)


def sequence_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int,
                      with_entropy: bool = False, temperature: float = 1.0):
    """Token log-probs of the response part of ``input_ids`` under ``model`` (keeps the graph).

    Args:
        input_ids, attention_mask: ``(N, P+T)`` as in ``Rollout``.
        prompt_len: P; the response tokens are columns ``P .. P+T-1``.
        with_entropy: also return the per-token entropy of the policy ``(N, T)`` (detached).
        temperature: divide the logits by it (match the sampling temperature for exact ratios).
    Returns:
        ``(N, T)`` log π(y_t | x, y_<t) (and the entropy when asked).

    Lesson 01.3 (exercises 01.3.x); the sampling and π(y|x) = Π_t π(y_t | x, y_<t) of LPO's setup.
    """
    pos = position_ids_from_mask(attention_mask)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos).logits  # (N, L, V)
    if temperature != 1.0:
        logits = logits / temperature
    lp = response_logprobs(logits, input_ids, prompt_len)             # (N, T)
    if with_entropy:
        return lp, token_entropy(logits[:, prompt_len - 1:-1, :].detach())
    return lp


def format_prompts(tokenizer, prompts: Sequence[str], chat_template: bool) -> list[str]:
    """Prompts as the model sees them: raw, or wrapped in the tokenizer's chat template.

    Lesson 01.3 (exercises 01.3.x); the sampling and π(y|x) = Π_t π(y_t | x, y_<t) of LPO's setup.
    """
    if not chat_template:
        return list(prompts)
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("chat_template=True but the tokenizer has no chat template")
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts]
