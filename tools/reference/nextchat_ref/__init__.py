"""nextchat_ref: the PyTorch reference of NExT-Chat that every engine stage is checked against.

Built from HF transformers (LLaMA, CLIP), Meta's segment-anything (SAM) and glue written from
../shared/MODEL_SPEC.md. Used only to write goldens; CI never imports it.
"""
