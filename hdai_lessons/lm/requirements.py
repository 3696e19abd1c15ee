"""What the RLVR/CAT trainers need from a pretrained policy, checked right after loading.

A model folder from the hub can change under a branch name, or a learner can point the course at
another checkpoint. The trainers depend on a few properties; each is checked here so that a wrong
model fails at load time with the fix, instead of mid-run with an index error or silently wrong
rewards.

Lessons 01.4 and 02.4 (issue 12: loaders that load); no paper equation.
"""
from __future__ import annotations


class PolicyConfigError(ValueError):
    """A loaded policy lacks something the trainer depends on (the message says what and why)."""


def check_policy(model, tokenizer, chat_template: bool, name: str = "the policy") -> None:
    """Raise ``PolicyConfigError`` unless ``model`` + ``tokenizer`` can run the group-RL trainer.

    Checks: a causal-LM head over at least the tokenizer's vocabulary (sampled ids must decode and
    teacher-forced log-probs must index the logits), an EOS token (responses end; the sampler stops
    on it), a pad token (batched left-padded sampling) and, when the run formats prompts with the
    chat template (``RLVRConfig.chat_template``), a chat template.
    """
    cfg = model.config
    vocab = getattr(cfg, "vocab_size", None)
    if vocab is None or not hasattr(model, "get_output_embeddings") or model.get_output_embeddings() is None:
        raise PolicyConfigError(f"{name} ({type(model).__name__}) has no LM head; load an AutoModelForCausalLM")
    if len(tokenizer) > vocab:
        raise PolicyConfigError(f"{name}'s tokenizer has {len(tokenizer)} tokens but its LM head only {vocab}: "
                                "the tokenizer does not belong to this model")
    if tokenizer.eos_token_id is None:
        raise PolicyConfigError(f"{name}'s tokenizer has no EOS token; responses could never end")
    if tokenizer.pad_token_id is None:
        raise PolicyConfigError(f"{name}'s tokenizer has no pad token (load it with lm.load_lm, which sets one)")
    if chat_template and not getattr(tokenizer, "chat_template", None):
        raise PolicyConfigError(f"{name}'s tokenizer has no chat template but the run uses one "
                                "(RLVRConfig.chat_template=True): load an instruct model or set chat_template=False")
