"""Cross-view fusion of per-view bottlenecks: a small pre-norm transformer over the tokens of every view.

Each view's ``(D, h, w)`` bottleneck becomes ``h * w`` tokens; a learned position embedding (the
same for every view) and a learned view embedding are added, and the ``V * h * w`` tokens attend
jointly, so a position in one view can draw on every position of the others. Afterwards the ``V``
tokens of each position are concatenated and mixed back to ``D`` channels by ``Linear(V * D, D)``
and a LayerNorm (NeuroPBR's ``ViTCrossViewFusion``, plus the embeddings it lacks).

The position embedding is learned on a ``grid x grid`` token grid and resized bilinearly when the
input gives another grid, so one model runs at any input size the encoder accepts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossViewFusion", "DropPath", "TransformerBlock", "drop_path"]


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a residual branch for a random ``rate`` of the samples, rescaling the rest.

    ``x`` is ``(B, ...)``; each sample is kept with probability ``1 - rate`` and divided by it, so the
    expectation is unchanged. The identity when not training or when ``rate`` is 0.
    """
    if not training or rate == 0.0:
        return x
    keep = 1.0 - rate
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Module form of :func:`drop_path`."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.rate, self.training)


class SelfAttention(nn.Module):
    """Multi-head self-attention over ``(B, N, D)`` tokens with one fused qkv projection."""

    def __init__(self, dim: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        dropout = self.attn_drop if self.training else 0.0
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], dropout_p=dropout)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(batch, tokens, dim)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``; both with stochastic depth."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads, attn_drop, proj_drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(proj_drop), nn.Linear(hidden, dim), nn.Dropout(proj_drop)
        )
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CrossViewFusion(nn.Module):
    """Fuse ``(B, V, D, h, w)`` per-view latents into one ``(B, D, h, w)`` latent by joint attention.

    Args:
        dim: token width D.
        num_views: V.
        num_heads, depth, mlp_ratio: the transformer's shape.
        proj_drop, attn_drop: dropout after projections and on attention weights.
        drop_path_rate: stochastic depth of the last block; earlier blocks ramp linearly from 0.
        grid: side of the token grid the position embedding is learned on.
    """

    def __init__(
        self,
        dim: int,
        num_views: int = 3,
        num_heads: int = 8,
        depth: int = 4,
        mlp_ratio: float = 4.0,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path_rate: float = 0.0,
        grid: int = 16,
    ) -> None:
        super().__init__()
        self.num_views = num_views
        self.position = nn.Parameter(torch.zeros(1, dim, grid, grid))
        self.view = nn.Parameter(torch.zeros(1, num_views, 1, dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        nn.init.trunc_normal_(self.view, std=0.02)
        rates = torch.linspace(0.0, drop_path_rate, depth).tolist() if depth > 1 else [drop_path_rate] * depth
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, mlp_ratio, proj_drop, attn_drop, rate) for rate in rates
        )
        self.fusion = nn.Linear(num_views * dim, dim)
        self.norm = nn.LayerNorm(dim)

    def position_embedding(self, height: int, width: int) -> torch.Tensor:
        """``(1, 1, height * width, D)`` position embedding for a ``height x width`` token grid.

        Always resized, with no branch on the shape (which a trace would freeze): a bilinear resize to
        the learned grid's own size returns it exactly.
        """
        position = F.interpolate(self.position, size=(height, width), mode="bilinear", align_corners=False)
        return position.flatten(2).transpose(1, 2).unsqueeze(1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        batch, views, dim, height, width = latents.shape
        tokens = latents.flatten(3).transpose(2, 3)  # (B, V, h*w, D)
        tokens = tokens + self.position_embedding(height, width) + self.view
        x = tokens.reshape(batch, views * height * width, dim)
        for block in self.blocks:
            x = block(x)
        per_position = x.reshape(batch, views, height * width, dim).permute(0, 2, 1, 3).reshape(batch, -1, views * dim)
        fused = self.norm(self.fusion(per_position))  # (B, h*w, D)
        return fused.transpose(1, 2).reshape(batch, dim, height, width)
