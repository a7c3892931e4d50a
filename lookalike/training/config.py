"""What one training run does: every knob, with the defaults `make model` ships."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    mode: str = "unfreeze"        # "head" (linear projection on frozen features) | "unfreeze"
    loss: str = "cosine"          # "ce" | "cosine" (normalised softmax)
    unfreeze: int = 1             # MBConv blocks unfrozen (+ head conv) in mode "unfreeze"
    split: int = 13               # trunk/tail split: tail = blocks split..15 (must be <= 16-unfreeze)
    side: int = 224
    gem_p: float = 1.0            # 1 = GAP (GeM p=3 was -2 points frozen)
    proj_dim: int = 256           # mode "head"
    temperature: float = 0.05     # loss "cosine"
    steps: int = 200
    head_steps: int = 100         # classifier-only warm-up before unfreezing
    batch: int = 64
    lr: float = 1e-4              # backbone layers
    head_lr: float = 1e-3         # classifier / projection
    n_aug_photo: int = 2          # augmented views per training photo
    n_aug_catalogue: int = 40     # composited views per catalogue image
    n_views: int = 1              # catalogue views at ingest (1 = the image only; 8 measured no better)
    view_kind: str = "clutter"
    domain_means: bool = False    # subtract per-domain means (helps frozen ImageNet, not the trained tail)
    seed: int = 0
