"""Module 05: one model that understands, generates and edits images (JoyAI-Image style, arXiv 2605.04128).

- ``shapes``: the procedural shapes world (scenes, exact captions, QA, edit instructions, renderer).
- ``evaluate``: analytic evaluators (detector, generation adherence, edit success + PSNR, QA accuracy).
- ``mllm``: a tiny multimodal LLM (patch embedding + causal transformer, next-token loss).
- ``mmdit``: an MMDiT from scratch (double-stream blocks, joint attention, adaLN-zero, QK-RMSNorm,
  multi-axis RoPE on image tokens), weight-compatible with diffusers' ``JoyImageEditTransformer3DModel``.
- ``conditioning``: the MLLM's last hidden states (template dropped) as the MMDiT's condition.
- ``guidance``: classifier-free guidance with norm rescaling.
- ``train``: the training stages (understanding, generation, editing) and the flow-matching sampler.
- ``full``: the real JoyAI-Image through diffusers' ``JoyImageEditPipeline`` (tiny configs in CI).
"""
