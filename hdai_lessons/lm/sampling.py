"""Batched sampling of K responses per prompt, with token log-probs and response masks.

The rollout half of an RLVR iteration: left-pad B prompts, repeat each K times, sample up to
``max_new_tokens`` tokens per row with a KV cache (temperature / top-p), stop a row at its EOS, and
return everything the update needs in ``(B, K, T)`` layout. ``sequence_logprobs`` recomputes the
token log-probs of given responses under a model (with or without grad) — the trainer calls it for
π_b (``old_logp``, no grad) and for π_θ at every inner update.

Works with any ``transformers`` causal LM (the tiny ``Qwen2ForCausalLM`` or a real Qwen).
"""
from __future__ import annotations

import functools
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


def _base_model(model):
    """The module under a DDP / accelerate wrapper (its ``forward`` signature is the model's)."""
    return getattr(model, "module", model)


@functools.cache
def _forward_params(cls: type) -> frozenset:
    """Argument names of ``cls.forward`` (looked up once per model class)."""
    return frozenset(inspect.signature(cls.forward).parameters)


def _cache_kw(model) -> str:
    """Name of the KV-cache argument: transformers ≥ 5.2x says ``cache`` (``past_key_values`` is deprecated)."""
    return "cache" if "cache" in _forward_params(type(_base_model(model))) else "past_key_values"


def _keeps_logits(model) -> bool:
    """Does ``model.forward`` take ``logits_to_keep`` (the LM head applied only at the last positions)?"""
    return "logits_to_keep" in _forward_params(type(_base_model(model)))


def prefill_shared(model, ids: torch.Tensor, attn: torch.Tensor, K: int, use_cache: bool = True):
    """Run each prompt once and share its KV cache across its K responses (shared-prefix prefill).

    The prompt's keys and values do not depend on which response follows, so one forward pass of
    the B prompts, with its cache repeated K times along the batch (``row b*K + k``), is exactly the
    prefill of the B·K repeated rows, for 1/K of the compute. Only the last position's logits are
    computed (``logits_to_keep=1``): the prompt positions are never scored.

    Args:
        model: a ``transformers`` causal LM; ids, attn: ``(B, P)`` left-padded prompts.
        K: rows per prompt.
        use_cache: passed to the model (the layers fill the given cache in place either way; False
            silences the "use_cache with gradient checkpointing" warning of a checkpointed model).
    Returns:
        ``(cache, logits)``: a ``DynamicCache`` of ``B*K`` rows and ``(B*K, V)`` logits at position P − 1.
        Under ``torch.enable_grad`` both carry the graph back to the prompt forward.

    Lessons 01.3, 01.4 (sampling and the update); the prefix of π(y|x) = Π_t π(y_t | x, y_<t).
    """
    from transformers import DynamicCache

    kw = {"logits_to_keep": 1} if _keeps_logits(model) else {}
    cache = DynamicCache()                      # filled in place by the layers
    out = model(input_ids=ids, attention_mask=attn, position_ids=position_ids_from_mask(attn),
                use_cache=use_cache, **{_cache_kw(model): cache}, **kw)
    if cache.get_seq_length() != ids.shape[1]:
        raise RuntimeError("the model did not fill the KV cache (checkpointed layers drop it)")
    if K > 1:
        cache.batch_repeat_interleave(K)
    return cache, out.logits[:, -1, :].repeat_interleave(K, dim=0)


def sample_groups(model, tokenizer, prompts: Sequence[str], K: int, max_new_tokens: int,
                  temperature: float = 1.0, top_p: float = 1.0,
                  generator: "torch.Generator | None" = None) -> Rollout:
    """Sample K responses to each prompt (the rollout of one RLVR iteration).

    Each prompt is prefilled once and its KV cache shared by its K responses (``prefill_shared``);
    only the last position's logits are computed, at the prefill and at every decoding step; rows
    that have emitted EOS leave the model's batch and cache (every row still draws from the
    generator at every step, so the draws do not depend on when rows finish). Runs under
    ``torch.inference_mode`` (no autograd bookkeeping); the returned tensors are ordinary ones.

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
    with torch.inference_mode():
        ro = _sample_groups(model, tokenizer, prompts, K, max_new_tokens, temperature, top_p, generator)
    with torch.no_grad():                        # inference tensors → ordinary tensors (usable in autograd)
        for name in ("input_ids", "attention_mask", "response_ids", "mask", "logp"):
            setattr(ro, name, getattr(ro, name).clone())
    return ro


def _sample_groups(model, tokenizer, prompts, K, max_new_tokens, temperature, top_p, generator) -> Rollout:
    """``sample_groups``'s body (run under ``torch.inference_mode``)."""
    device = next(model.parameters()).device
    prompt_ids, prompt_attn = encode_prompts(tokenizer, prompts, device)   # (B, P)
    B, P = prompt_ids.shape
    N = B * K
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    out_tokens = torch.full((N, max_new_tokens), pad, dtype=torch.long, device=device)
    out_logp = torch.zeros(N, max_new_tokens, device=device)
    done = torch.zeros(N, dtype=torch.bool, device=device)
    full_attn = torch.ones(N, P + max_new_tokens, dtype=prompt_attn.dtype, device=device)
    full_attn[:, :P] = prompt_attn.repeat_interleave(K, dim=0)         # row b*K+k; response columns 1
    cache_kw, keep_kw = _cache_kw(model), ({"logits_to_keep": 1} if _keeps_logits(model) else {})
    cache, logits = prefill_shared(model, prompt_ids, prompt_attn, K)  # (N, V) at position P − 1
    pos = position_ids_from_mask(full_attn[:, :P])[:, -1:]             # (N, 1)
    zero = torch.zeros((), device=device)
    live = None                                  # rows in the model's batch (None: all N, in order)
    T = max_new_tokens
    for t in range(max_new_tokens):
        logits = logits.float()
        if live is not None:                     # finished rows: any distribution (their draw becomes pad)
            logits = logits.new_zeros(N, logits.shape[-1]).index_copy_(0, live, logits)
        logp_all = torch.log_softmax(logits / temperature if temperature != 1.0 else logits, dim=-1)   # (N, V)
        probs = logp_all.exp()
        if top_p < 1.0:
            probs = _top_p_filter(probs, top_p)
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (N,): every row draws, as always
        nxt = nxt.masked_fill(done, pad)
        out_tokens[:, t] = nxt
        out_logp[:, t] = torch.where(done, zero, logp_all.gather(-1, nxt[:, None]).squeeze(-1))
        done = done | (nxt == eos)
        n_live = N if live is None else live.numel()
        n_open = int((~done).sum())
        if t + 1 == max_new_tokens or n_open == 0:
            T = t + 1
            break
        if n_open <= n_live - max(1, n_live // 8):   # drop finished rows from the batch (and the KV cache)
            open_rows = (~done).nonzero().squeeze(-1)
            cache.batch_select_indices(open_rows if live is None else torch.searchsorted(live, open_rows))
            live = open_rows
        pos = pos + 1
        rows = slice(None) if live is None else live
        out = model(input_ids=nxt[rows, None], attention_mask=full_attn[rows, :P + t + 1], position_ids=pos[rows],
                    use_cache=True, **{cache_kw: cache}, **keep_kw)                  # grows the cache in place
        logits = out.logits[:, -1, :]
    out_tokens, out_logp = out_tokens[:, :T], out_logp[:, :T]
    mask = response_mask(out_tokens, eos)                             # (N, T)
    full_ids = torch.cat([prompt_ids.repeat_interleave(K, dim=0), out_tokens], dim=1)   # (N, P+T)
    full_attn = torch.cat([full_attn[:, :P], mask.to(full_attn.dtype)], dim=1)
    texts = decode_responses(tokenizer, out_tokens)
    return Rollout(
        input_ids=full_ids, attention_mask=full_attn, prompt_len=P,
        response_ids=out_tokens.view(B, K, T), mask=mask.view(B, K, T),
        logp=(out_logp * mask).view(B, K, T),
        texts=[texts[b * K:(b + 1) * K] for b in range(B)],
    )


def decode_responses(tokenizer, tokens: torch.Tensor) -> list[str]:
    """``tokenizer.batch_decode(tokens, skip_special_tokens=True)``: ``(N, T)`` → N strings.

    A fast tokenizer that does no clean-up of the decoded text decodes the whole batch in one call
    of its Rust backend (the same ``decode`` per row, without a Python loop over rows).

    Lesson 01.3; no paper equation.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and not getattr(tokenizer, "clean_up_tokenization_spaces", True):
        return backend.decode_batch(tokens.tolist(), skip_special_tokens=True)
    return tokenizer.batch_decode(tokens, skip_special_tokens=True)


def _top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail of each row outside the smallest set with mass ≥ ``top_p``: ``(N, V)`` → ``(N, V)``."""
    sorted_p, idx = probs.sort(dim=-1, descending=True)
    keep = sorted_p.cumsum(-1) - sorted_p < top_p                     # always keeps the top token
    return torch.zeros_like(probs).scatter(-1, idx, sorted_p * keep)


def _checkpointed_layers(model) -> list:
    """The decoder layers whose activation checkpointing is on (``transformers``' ``GradientCheckpointingLayer``)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in _base_model(model).modules()
            if isinstance(m, GradientCheckpointingLayer) and getattr(m, "gradient_checkpointing", False)]


def _can_share_prefix_under_checkpointing(model) -> bool:
    """Shared-prefix forward with checkpointed layers needs layers that may keep a read-only cache."""
    layers = _checkpointed_layers(model)
    return not layers or all(hasattr(m, "_can_checkpoint_with_cache") for m in layers)


class _ReadOnlyPrefix:
    """Make a ``DynamicCache`` read-only: ``update`` returns prefix ⊕ new keys/values without storing them.

    A checkpointed layer replays its forward in the backward pass; with a cache that does not grow,
    the replay sees the same prefix, so the layer can keep the cache under checkpointing.
    """

    def __init__(self, cache):
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        self.ok = type(cache) is DynamicCache and all(type(layer) is DynamicLayer for layer in cache.layers)
        self.cache = cache

    def __enter__(self):
        if self.ok:
            layers = self.cache.layers

            def update(key_states, value_states, layer_idx, *args, **kwargs):
                layer = layers[layer_idx]
                return torch.cat([layer.keys, key_states], dim=-2), torch.cat([layer.values, value_states], dim=-2)
            self.cache.update = update                      # instance attribute: only this cache
        return self.cache

    def __exit__(self, *exc):
        if self.ok:
            del self.cache.update


class _Checkpointing:
    """Switch activation checkpointing off (prefix pass) or let checkpointed layers read a cache (response pass)."""

    def __init__(self, layers: list, mode: str):
        self.layers, self.mode = layers, mode

    def __enter__(self):
        for m in self.layers:
            if self.mode == "off":
                m.gradient_checkpointing = False
            else:
                m._can_checkpoint_with_cache = True         # safe: the cache is read-only (``_ReadOnlyPrefix``)

    def __exit__(self, *exc):
        for m in self.layers:
            if self.mode == "off":
                m.gradient_checkpointing = True
            else:
                del m._can_checkpoint_with_cache            # back to the class's value


def response_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int,
                    group_size: int = 1) -> torch.Tensor:
    """Logits at the response positions only: ``(N, T, V)``, row n, column t predicting ``input_ids[n, P + t]``.

    Never computes the LM head at prompt positions (at full scale, 151,936 logits per position):

    - ``group_size = 1``: one forward of the whole ``(N, P+T)`` batch with ``logits_to_keep = T + 1``
      (the last T + 1 positions; the final one predicts nothing and is dropped);
    - ``group_size = K > 1`` (rows ``b*K .. b*K+K−1`` share their prompt, the ``Rollout`` layout):
      each prompt is run once (``prefill_shared``), its KV cache is shared by its K rows, and only
      the response tokens ``y_0 .. y_{T−2}`` are run on top of it, reading the prompt's keys and
      values (read-only). Exact (the same function of the weights, so the same values and gradients
      up to float rounding) for ~1/K of the prompt compute. With activation checkpointing on, the
      prompt pass (B rows) stores its activations and the response pass is checkpointed.

    Args:
        model: a ``transformers`` causal LM (possibly wrapped by accelerate / DDP).
        input_ids, attention_mask: ``(N, P+T)`` as in ``Rollout``; prompt_len: P ≥ 1.
        group_size: rows per shared prompt (``N`` divisible by it).
    Returns:
        ``(N, T, V)`` logits, with the graph when grad is enabled.

    Lessons 01.3, 01.4 (the update's forward pass); π(y|x) = Π_t π(y_t | x, y_<t) of LPO's setup.
    """
    N, L = input_ids.shape
    P, T = prompt_len, L - prompt_len
    if not 1 <= P < L:
        raise ValueError(f"prompt_len must be in [1, {L - 1}], got {P}")
    ckpt = _checkpointed_layers(model) if torch.is_grad_enabled() and _base_model(model).training else []
    if group_size > 1 and (not ckpt or _can_share_prefix_under_checkpointing(model)):
        if N % group_size:
            raise ValueError(f"{N} rows do not split into groups of {group_size}")
        with _Checkpointing(ckpt, "off"):
            cache, first = prefill_shared(model, input_ids[::group_size, :P], attention_mask[::group_size, :P],
                                          group_size, use_cache=not ckpt)
        if T == 1:
            return first[:, None, :]
        pos = position_ids_from_mask(attention_mask[:, :L - 1])[:, P:]          # (N, T−1)
        read_only = _ReadOnlyPrefix(cache)
        if ckpt and not read_only.ok:
            raise RuntimeError("activation checkpointing with a shared prefix needs a plain DynamicCache")
        with read_only as prefix, _Checkpointing(ckpt, "read"):
            rest = model(input_ids=input_ids[:, P:L - 1], attention_mask=attention_mask[:, :L - 1], position_ids=pos,
                         use_cache=not ckpt, **{_cache_kw(model): prefix}).logits      # (N, T−1, V)
        return torch.cat([first[:, None, :].to(rest.dtype), rest], dim=1)
    pos = position_ids_from_mask(attention_mask)
    if _keeps_logits(model):
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos, use_cache=False,
                       logits_to_keep=T + 1).logits
        return logits[:, :-1, :]
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos, use_cache=False).logits
    return logits[:, P - 1:-1, :]


def sequence_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int,
                      with_entropy: bool = False, temperature: float = 1.0, group_size: int = 1):
    """Token log-probs of the response part of ``input_ids`` under ``model`` (keeps the graph).

    The logits are computed at the response positions only (``response_logits``).

    Args:
        input_ids, attention_mask: ``(N, P+T)`` as in ``Rollout``.
        prompt_len: P; the response tokens are columns ``P .. P+T-1``.
        with_entropy: also return the per-token entropy of the policy ``(N, T)`` (detached).
        temperature: divide the logits by it (match the sampling temperature for exact ratios).
        group_size: K when rows ``b*K .. b*K+K−1`` share their prompt (each prompt is then run once).
    Returns:
        ``(N, T)`` log π(y_t | x, y_<t) (and the entropy when asked).

    Lesson 01.3 (exercises 01.3.x); the sampling and π(y|x) = Π_t π(y_t | x, y_<t) of LPO's setup.
    """
    logits = response_logits(model, input_ids, attention_mask, prompt_len, group_size)   # (N, T, V)
    if temperature != 1.0:
        logits = logits / temperature
    lp = token_logprobs(logits, input_ids[:, prompt_len:])             # (N, T)
    if with_entropy:
        with torch.no_grad():
            return lp, token_entropy(logits.detach())
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
