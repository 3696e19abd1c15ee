"""Module 05: one model that understands, generates and edits images (JoyAI-Image style, arXiv 2605.04128).

- ``shapes``: the procedural shapes world (scenes, exact captions, QA, edit instructions, renderer); 05.1.
- ``evaluate``: analytic evaluators (detector, generation adherence, edit success + PSNR, QA accuracy, and QA
  accuracy by question type and number of objects with its chance levels: the binding test); 05.1–05.3.
- ``mllm``: a tiny multimodal LLM (patch embedding + causal transformer, next-token loss); 05.1.
- ``mmdit``: an MMDiT from scratch (double-stream blocks, joint attention, adaLN-zero, QK-RMSNorm,
  multi-axis RoPE on image tokens), weight-compatible with diffusers' ``JoyImageEditTransformer3DModel``; 05.2.
- ``conditioning``: the MLLM's last hidden states (template dropped) as the MMDiT's condition; 05.3.
- ``guidance``: classifier-free guidance with norm rescaling; 05.2–05.4.
- ``editing``: the toy's residual editor (the edit as a residual on the source, image-space loss, "no instruction
  → keep the image"), a toy-only device that JoyAI-Image does not use; 05.3.
- ``train``: the training stages (understanding, generation, editing), the flow-matching sampler and the
  lessons' sizes (``UnderstandingLessonConfig`` 05.1, ``TextToImageLessonConfig`` 05.2, ``UnifiedLessonConfig`` 05.3).
- ``full``: the real JoyAI-Image through diffusers' ``JoyImageEditPipeline`` (tiny configs in CI) and
  lesson 05.4's settings (``FullConfig``).
- ``pretrained``: the shipped toy checkpoints; ``viz``: figures.

The paper's facts are read from the course's JoyAI-Image digest; docstrings name its sections (the paper
states no numbered equations for these pieces).
"""
