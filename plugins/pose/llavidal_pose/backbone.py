"""A skeleton transformer of the Hyperformer family (Zhou et al., "Hypergraph Transformer for Skeleton-based
Action Recognition"), in plain PyTorch.

Input ``(N, C, T, V, M)``: N clips, C=3 coordinates, T frames, V=25 joints, M bodies. After a BatchNorm over
(M, V, C), every body is processed alone, as ``(N*M, C, T, V)``, by ``depth`` `JointTimeBlock` s. Each block

- attends across the joints of every frame (`HypergraphJointAttention`): query-key scores plus three
  structural terms — a learned embedding of the hop distance between the two joints, the query against
  the embedding of the key joint's body part (the part is a hyperedge: the mean of its joints' features,
  projected), and a per-head bias on that part embedding — with the softmaxed attention added, through a
  gate that starts at zero, to a learned per-head joint-mixing matrix that starts as the identity;
- then mixes over time with a multi-scale temporal convolution (dilated branches, a max-pool branch and
  a pointwise branch, concatenated), strided by 2 in the ``downsample_layers`` (layers 5 and 8 by default,
  as Hyperformer's l5 and l8, so T' = T / 4).

The output is the feature map ``(N*M, width, T', V)``; `llavidal_pose.encoder` turns it into tokens and a
pooled embedding. Width 216 = 9 heads of 24 channels, as in the PoseCLIP that LLAVIDAL's features come from.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from llavidal_pose import joints as ntu


def body_part_average() -> torch.Tensor:
    """``(V, P)``: right-multiplying ``(..., V)`` features by it averages the joints of each body part."""
    membership = F.one_hot(torch.tensor(ntu.part_of_joint()), ntu.NUM_BODY_PARTS).float()
    return membership / membership.sum(0, keepdim=True)


class HypergraphJointAttention(nn.Module):
    """Multi-head self-attention across the joints of each frame, with skeleton-structure terms."""

    def __init__(self, in_dim: int, dim: int, num_heads: int, hop_distance: torch.Tensor):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not a multiple of the number of heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        num_joints = hop_distance.shape[0]
        self.query = nn.Conv2d(in_dim, dim, 1, bias=False)
        self.key_value = nn.Conv2d(in_dim, 2 * dim, 1, bias=False)
        self.register_buffer("hop_distance", hop_distance.long(), persistent=False)
        self.hop_embedding = nn.Parameter(torch.zeros(int(hop_distance.max()) + 1, dim))
        self.part_bias = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        self.joint_mixing = nn.Parameter(torch.eye(num_joints).repeat(num_heads, 1, 1))
        self.attention_gate = nn.Parameter(torch.zeros(1))
        self.output = nn.Conv2d(dim, dim, 1)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, H*D, T, V)`` → ``(N, T, H, V, D)``."""
        n, _, t, v = x.shape
        return x.reshape(n, self.num_heads, self.head_dim, t, v).permute(0, 3, 1, 4, 2)

    def forward(self, x: torch.Tensor, part_embedding: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        query = self._heads(self.query(x))
        key, value = (self._heads(half) for half in self.key_value(x).chunk(2, dim=1))
        part = self._heads(part_embedding)
        hops = self.hop_embedding[self.hop_distance].reshape(v, v, self.num_heads, self.head_dim)
        scores = (
            query @ key.transpose(-1, -2)
            + torch.einsum("nthvd,vwhd->nthvw", query, hops)
            + query @ part.transpose(-1, -2)
            + torch.einsum("hd,nthwd->nthw", self.part_bias, part).unsqueeze(-2)
        )
        attention = (scores * self.scale).softmax(dim=-1)
        mixed = (self.attention_gate * attention + self.joint_mixing) @ value
        return self.output(mixed.permute(0, 2, 4, 1, 3).reshape(n, -1, t, v))


class MultiScaleTemporalConv(nn.Module):
    """Temporal convolution over ``(N, C, T, V)`` in parallel branches of different dilation, concatenated."""

    def __init__(self, dim: int, kernel_size: int = 5, stride: int = 1, dilations: Sequence[int] = (1, 2)):
        super().__init__()
        num_branches = len(dilations) + 2
        if dim % num_branches:
            raise ValueError(f"width {dim} is not a multiple of the {num_branches} temporal branches "
                             f"(dilations {list(dilations)} plus a max-pool and a pointwise branch)")
        branch = dim // num_branches
        self.dilated = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(dim, branch, 1), nn.BatchNorm2d(branch), nn.ReLU(inplace=True),
                nn.Conv2d(branch, branch, (kernel_size, 1), stride=(stride, 1),
                          padding=((kernel_size - 1) * dilation // 2, 0), dilation=(dilation, 1)),
                nn.BatchNorm2d(branch),
            )
            for dilation in dilations
        )
        self.max_pooled = nn.Sequential(
            nn.Conv2d(dim, branch, 1), nn.BatchNorm2d(branch), nn.ReLU(inplace=True),
            nn.MaxPool2d((3, 1), stride=(stride, 1), padding=(1, 0)), nn.BatchNorm2d(branch),
        )
        self.pointwise = nn.Sequential(nn.Conv2d(dim, branch, 1, stride=(stride, 1)), nn.BatchNorm2d(branch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [module(x) for module in self.dilated] + [self.max_pooled(x), self.pointwise(x)]
        return torch.cat(branches, dim=1)


class JointTimeBlock(nn.Module):
    """Joint attention (with a skip), then multi-scale temporal convolution (with a residual), then ReLU."""

    def __init__(self, in_dim: int, dim: int, num_heads: int, *, stride: int = 1, kernel_size: int = 5,
                 dilations: Sequence[int] = (1, 2)):
        super().__init__()
        self.register_buffer("part_average", body_part_average(), persistent=False)
        self.register_buffer("part_of_joint", torch.tensor(ntu.part_of_joint()), persistent=False)
        self.norm = nn.LayerNorm(in_dim)
        self.part_projection = nn.Conv2d(in_dim, dim, 1, bias=False)
        self.attention = HypergraphJointAttention(in_dim, dim, num_heads, torch.tensor(ntu.hop_distances()))
        self.skip = nn.Identity() if in_dim == dim else nn.Conv2d(in_dim, dim, 1, bias=False)
        self.temporal = MultiScaleTemporalConv(dim, kernel_size, stride, dilations)
        if in_dim == dim and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(nn.Conv2d(in_dim, dim, 1, stride=(stride, 1)), nn.BatchNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = x @ self.part_average.to(x.dtype)
        part_embedding = self.part_projection(parts)[..., self.part_of_joint]
        normed = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        attended = self.skip(x) + self.attention(normed, part_embedding)
        return F.relu(self.temporal(attended) + self.residual(x))


class HyperformerBackbone(nn.Module):
    """``(N, C, T, V, M)`` skeletons → ``(N*M, width, T', V)`` features (T' = T / 2**len(downsample_layers))."""

    def __init__(self, in_channels: int = 3, width: int = 216, num_heads: int = 9, depth: int = 10,
                 downsample_layers: Sequence[int] = (5, 8), num_person: int = 2, kernel_size: int = 5,
                 dilations: Sequence[int] = (1, 2)):
        super().__init__()
        if any(not 1 <= layer <= depth for layer in downsample_layers):
            raise ValueError(f"downsample_layers {list(downsample_layers)} must be layer numbers from 1 to {depth}")
        self.num_person = num_person
        self.input_norm = nn.BatchNorm1d(num_person * ntu.NUM_JOINTS * in_channels)
        self.blocks = nn.ModuleList(
            JointTimeBlock(in_channels if layer == 1 else width, width, num_heads,
                           stride=2 if layer in downsample_layers else 1, kernel_size=kernel_size,
                           dilations=dilations)
            for layer in range(1, depth + 1)
        )
        self.num_downsamples = len(set(downsample_layers))
        self.apply(_init_weights)

    def output_frames(self, num_frames: int) -> int:
        """T' for an input of ``num_frames`` frames (each stride-2 layer rounds up)."""
        for _ in range(self.num_downsamples):
            num_frames = (num_frames + 1) // 2
        return num_frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        if v != ntu.NUM_JOINTS or m != self.num_person:
            raise ValueError(f"expected input (N, C, T, {ntu.NUM_JOINTS}, {self.num_person}), got {tuple(x.shape)}")
        x = self.input_norm(x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t))
        x = x.reshape(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        for block in self.blocks:
            x = block(x)
        return x


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
