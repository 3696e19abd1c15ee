"""An in-memory character-level tokenizer that is a real ``PreTrainedTokenizerFast``.

Every character of a fixed alphabet is one token, so a tiny LM learns arithmetic digit by digit and
nothing needs downloading. Because it is a genuine ``transformers`` tokenizer it has a chat template,
``padding_side="left"`` for batched generation, and ``save_pretrained`` /
``AutoTokenizer.from_pretrained(local_dir)`` work offline, so the RLVR trainer treats it exactly like
Qwen's tokenizer.

Example::

    tok = build_char_tokenizer()
    tok("12+7=")["input_ids"]   # → [1, ids of '1','2','+','7','='] (BOS added, no EOS)
"""
from __future__ import annotations

import string

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3 (Qwen2Config(pad=0, bos=1, eos=2) below)

# digits, letters, punctuation used by the generated tasks and GSM8K-style text, and the space
DEFAULT_ALPHABET = string.digits + string.ascii_letters + " +-*/=()<>#.,:;?!$%'\"\n_"

# A minimal chat template (role line, content, blank line), so the full-scale code path that calls
# ``apply_chat_template`` runs unchanged on the tiny tokenizer.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'][0] | upper }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}A: {% endif %}"
)


def build_char_tokenizer(alphabet: str = DEFAULT_ALPHABET, model_max_length: int = 512):
    """Build the character-level ``PreTrainedTokenizerFast`` (vocab = 4 specials + ``alphabet``).

    Args:
        alphabet: the characters to give an id each (order fixes the ids; duplicates are an error).
        model_max_length: recorded on the tokenizer (truncation limit).
    Returns:
        a tokenizer with ``padding_side="left"``, BOS prepended by its post-processor, no EOS appended
        (the trainer appends ``eos_token_id`` to SFT targets itself), and a chat template.

    Lessons 01.3, 02.3; no paper equation.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if len(set(alphabet)) != len(alphabet):
        raise ValueError("alphabet has repeated characters")
    clash = [c for c in alphabet if c in "".join(SPECIAL_TOKENS) and len(c) > 1]
    if clash:
        raise ValueError(f"alphabet clashes with special tokens: {clash}")
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        model_input_names=["input_ids", "attention_mask"], padding_side="left",
        model_max_length=model_max_length, clean_up_tokenization_spaces=False)
    tok.chat_template = CHAT_TEMPLATE
    return tok
