"""The fast CPU path: W and G rebuilt from the loaded weights to run in bfloat16 with fewer
multiply-adds.

The plain networks in ``models/`` are the parity path (``fp32-exact``). This module builds
drop-in replacements for W and G that compute the same functions, reorganised:

* batch norms folded into the convolutions before them and spectral norms applied once;
* a 3x3 convolution of a nearest-upsampled input computed at the low resolution, one small
  kernel per output phase (the up-blocks of the hourglass and SPADE's shared MLPs at 128 and
  256 px): 2.25x to 4x fewer multiply-adds and far less memory traffic;
* SPADE's gamma and beta convolutions as one, every shared MLP of the same resolution as one,
  one instance norm shared by the branches that normalise the same input, and the 1x1
  shortcut conv folded into its SPADE's beta conv;
* the occlusion conv of the flattened (C * D) volume as a conv3d of the volume itself;
* bfloat16 weights and activations in channels-last layout for the convolutions (oneDNN
  uses the CPU's native bfloat16 dot products), float32 for the grid sampling, the
  keypoint Gaussians, the softmax and the outputs.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm

from ...choices import EXACT, FAST, PRECISIONS
from ...models import WarpingOutput
from ...models.dense_motion import DenseMotionNetwork, keypoint_gaussians, make_coordinate_grid
from ...models.spade_generator import SPADE, SPADEDecoder, SPADEResnetBlock
from ...models.warping_network import WarpingNetwork

__all__ = ["EXACT", "FAST", "PRECISIONS", "FastDecoder", "FastWarping", "UpsampledConv",
           "accelerate"]

FAST_DTYPE = torch.bfloat16


def accelerate(networks: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """The networks with W and G replaced by their fast versions (the others shared)."""
    fast = dict(networks)
    fast["W"] = FastWarping(networks["W"]).eval()
    fast["G"] = FastDecoder(networks["G"]).eval()
    return fast


# --- weights -------------------------------------------------------------------------------


def _conv_weight(conv: nn.Module) -> torch.Tensor:
    """The weight the conv applies: spectral-normalised when it carries a spectral norm."""
    for hook in conv._forward_pre_hooks.values():
        if isinstance(hook, SpectralNorm):
            return hook.compute_weight(conv, do_power_iteration=False).detach()
    return conv.weight.detach()


def _conv_bias(conv: nn.Module) -> torch.Tensor:
    if conv.bias is None:
        return torch.zeros(conv.out_channels, dtype=conv.weight.dtype, device=conv.weight.device)
    return conv.bias.detach()


def _fold_norm(conv: nn.Module, norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of conv followed by an eval-mode batch norm."""
    scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
    weight = _conv_weight(conv) * scale.view(-1, *[1] * (conv.weight.dim() - 1))
    bias = (_conv_bias(conv) - norm.running_mean) * scale + norm.bias.detach()
    return weight, bias


def _phase_taps(scale: int) -> list[torch.Tensor]:
    """Per output phase p of a 3-tap, padding-1 kernel over an input upsampled ``scale``
    times: the (3 low-res offsets -1, 0, 1) x (3 taps) matrix of which tap reads which
    low-resolution neighbour."""
    taps = []
    for p in range(scale):
        matrix = torch.zeros(3, 3, dtype=torch.float64)
        for k in range(3):
            matrix[(p + k - 1) // scale + 1, k] = 1
        taps.append(matrix)
    return taps


def _used_offsets(matrix: torch.Tensor) -> tuple[int, int]:
    """First and last low-res offset (0..2 for -1..1) that a phase reads."""
    rows = matrix.sum(1).nonzero().flatten().tolist()
    return rows[0], rows[-1]


def _phase_groups(scale: int) -> list[tuple[tuple[int, int], list[int], torch.Tensor]]:
    """Phases of one axis grouped by the low-res offsets they read: ((first, last), phases,
    (phases, offsets, taps) matrices restricted to those offsets)."""
    groups: dict[tuple[int, int], list[int]] = {}
    taps = _phase_taps(scale)
    for p, matrix in enumerate(taps):
        groups.setdefault(_used_offsets(matrix), []).append(p)
    return [(span, phases, torch.stack([taps[p][span[0]:span[1] + 1] for p in phases]))
            for span, phases in groups.items()]


# --- building blocks -----------------------------------------------------------------------


class UpsampledConv(nn.Module):
    """``conv3x3(nearest_upsample(x))`` with padding 1, computed on the low-resolution x.

    2-D: both axes upsampled ``scale`` times; 3-D: H and W upsampled, D kept (3 taps). Each
    group of output phases that read the same low-res neighbours gets one small kernel, so
    the multiply-adds drop from 9 to 4 (scale 2) or 2.25 (scale 4) per 2-D position.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.out_channels = weight.shape[0]
        self.spans: list[tuple[tuple[int, int], tuple[int, int]]] = []
        self.phases: list[tuple[list[int], list[int]]] = []
        kernels, biases = [], []
        equation = "pak,qbl,oikl->pqoiab" if weight.dim() == 4 else "pak,qbl,oijkl->pqoijab"
        for rspan, rphases, rtaps in _phase_groups(scale):
            for cspan, cphases, ctaps in _phase_groups(scale):
                k = torch.einsum(equation, rtaps, ctaps, weight.double())
                kernels.append(k.reshape(-1, *k.shape[3:]).to(weight.dtype))
                biases.append(bias.repeat(len(rphases) * len(cphases)))
                self.spans.append((rspan, cspan))
                self.phases.append((rphases, cphases))
        self.weights = nn.ParameterList(nn.Parameter(k, requires_grad=False) for k in kernels)
        self.biases = nn.ParameterList(nn.Parameter(b, requires_grad=False) for b in biases)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, *lead, h, w = x.shape[:1] + x.shape[2:]
        s, c = self.scale, self.out_channels
        conv = F.conv2d if x.dim() == 4 else F.conv3d
        padded = F.pad(x, (1, 1) * (x.dim() - 2))
        # channels-last result, phases interleaved with the low-res rows and columns
        out = x.new_empty(b, *lead, h, s, w, s, c)
        for (rspan, cspan), (rp, cp), kernel, bias in zip(self.spans, self.phases,
                                                          self.weights, self.biases,
                                                          strict=True):
            window = padded[..., rspan[0]:rspan[1] + h, cspan[0]:cspan[1] + w]
            y = conv(window, kernel, bias)
            y = y.movedim(1, -1).unflatten(-1, (len(rp), len(cp), c))
            out[..., rp[0]:rp[-1] + 1, :, cp[0]:cp[-1] + 1, :] = y.movedim(-3, -4)
        return out.reshape(b, *lead, h * s, w * s, c).movedim(-1, 1)


def _frozen(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone(), requires_grad=False)


class _Conv(nn.Module):
    """A convolution of fixed weights (2-D or 3-D by the weight's rank)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None,
                 padding: int | tuple[int, ...]) -> None:
        super().__init__()
        self.weight = _frozen(weight)
        self.bias = None if bias is None else _frozen(bias)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = F.conv2d if self.weight.dim() == 4 else F.conv3d
        return conv(x, self.weight, self.bias, padding=self.padding)


def _conv_of(conv: nn.Module) -> _Conv:
    return _Conv(_conv_weight(conv), conv.bias, conv.padding[0])


def _folded_conv_of(conv: nn.Module, norm: nn.Module) -> _Conv:
    return _Conv(*_fold_norm(conv, norm), conv.padding[0])


def _stacked_shared_mlps(spades: list[SPADE]) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of every SPADE's first MLP conv as one conv: they all read the same map."""
    convs = [spade.mlp_shared[0] for spade in spades]
    return (torch.cat([_conv_weight(c) for c in convs]),
            torch.cat([_conv_bias(c) for c in convs]))


def _instance_normalized(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Parameter-free instance norm of (B, C, H, W), statistics in float32."""
    var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
    inv_std = torch.rsqrt(var + eps)
    return (x - mean.to(x.dtype)) * inv_std.to(x.dtype)


class _FastSpade(nn.Module):
    """SPADE's gamma and beta convs as one conv, its '1 + gamma' folded into the bias."""

    def __init__(self, spade: SPADE) -> None:
        super().__init__()
        weight = torch.cat([_conv_weight(spade.mlp_gamma), _conv_weight(spade.mlp_beta)])
        bias = torch.cat([_conv_bias(spade.mlp_gamma) + 1, _conv_bias(spade.mlp_beta)])
        self.gamma_beta = _Conv(weight, bias, 1)

    def forward(self, normalized: torch.Tensor, actv: torch.Tensor) -> torch.Tensor:
        """SPADE given the instance-normalised input and the shared MLP's activation."""
        gamma, beta = self.gamma_beta(actv).chunk(2, dim=1)
        return torch.addcmul(beta, normalized, gamma)


class _FastShortcut(nn.Module):
    """``conv_s(SPADE_s(x))``. conv_s is 1x1 and linear, so conv_s(beta) is one conv of
    SPADE's activation with conv_s's fewer output channels: it runs with gamma's conv."""

    def __init__(self, spade: SPADE, conv_s: nn.Module) -> None:
        super().__init__()
        mix = _conv_weight(conv_s)[:, :, 0, 0].double()
        beta_weight = torch.einsum("oc,cjkl->ojkl", mix, _conv_weight(spade.mlp_beta).double())
        beta_bias = mix @ _conv_bias(spade.mlp_beta).double()
        weight = torch.cat([_conv_weight(spade.mlp_gamma), beta_weight.float()])
        bias = torch.cat([_conv_bias(spade.mlp_gamma) + 1, beta_bias.float()])
        self.gamma_beta = _Conv(weight, bias, 1)
        self.conv_s = _conv_of(conv_s)
        self.split = [spade.mlp_gamma.out_channels, conv_s.out_channels]

    def forward(self, normalized: torch.Tensor, actv: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.gamma_beta(actv).split(self.split, dim=1)
        return self.conv_s(normalized * gamma) + beta


class _FastResnetBlock(nn.Module):
    """SPADEResnetBlock from its loaded weights; norm_0 and norm_s share one normalisation."""

    def __init__(self, block: SPADEResnetBlock) -> None:
        super().__init__()
        self.conv_0 = _conv_of(block.conv_0)
        self.conv_1 = _conv_of(block.conv_1)
        self.norm_0 = _FastSpade(block.norm_0)
        self.norm_1 = _FastSpade(block.norm_1)
        self.shortcut = (_FastShortcut(block.norm_s, block.conv_s) if block.learned_shortcut
                         else None)

    def forward(self, x: torch.Tensor, actvs: list[torch.Tensor]) -> torch.Tensor:
        """``actvs``: the shared MLP activations of norm_0, norm_1 (and norm_s) at the
        block's resolution, to which x is nearest-upsampled. Upsampling repeats pixels,
        so x is normalised before it, on 4x fewer pixels; the upsampling blocks change the
        channel count, so their shortcut is conv_s of that, never x itself."""
        normalized = _instance_normalized(x)
        if x.shape[2:] != actvs[0].shape[2:]:
            normalized = F.interpolate(normalized, size=actvs[0].shape[2:], mode="nearest")
        shortcut = x if self.shortcut is None else self.shortcut(normalized, actvs[2])
        dx = self.conv_0(F.leaky_relu_(self.norm_0(normalized, actvs[0]), 2e-1))
        dx = self.conv_1(F.leaky_relu_(self.norm_1(_instance_normalized(dx), actvs[1]), 2e-1))
        return shortcut + dx


class FastDecoder(nn.Module):
    """G (:class:`SPADEDecoder`) for the fast path: bfloat16, channels-last; float32 in and
    out. The shared MLPs of every SPADE read the same 64x64 segmentation map, so they run
    as one conv per resolution, the upsampled ones at 64x64 through :class:`UpsampledConv`.
    """

    def __init__(self, decoder: SPADEDecoder, dtype: torch.dtype = FAST_DTYPE) -> None:
        super().__init__()
        self.input_channels = decoder.input_channels
        blocks = [getattr(decoder, f"G_middle_{i}") for i in range(6)]
        blocks += [decoder.up_0, decoder.up_1]
        self.fc = _conv_of(decoder.fc)
        self.blocks = nn.ModuleList(_FastResnetBlock(block) for block in blocks)
        self.counts = [len(_spades_of([block])) for block in blocks]
        self.shared_middle = _Conv(*_stacked_shared_mlps(_spades_of(blocks[:6])), 1)
        self.shared_up_0 = UpsampledConv(*_stacked_shared_mlps(_spades_of(blocks[6:7])), 2)
        self.shared_up_1 = UpsampledConv(*_stacked_shared_mlps(_spades_of(blocks[7:])), 4)
        self.conv_img = _conv_of(decoder.conv_img[0])
        self.upscale = decoder.conv_img[1].upscale_factor
        self.dtype = dtype
        self.to(dtype)

    def _activations(self, seg: torch.Tensor) -> Iterator[list[torch.Tensor]]:
        """Per block, the ReLU'd shared-MLP outputs of its SPADEs."""
        hidden = 128
        stacked = [self.shared_middle(seg), self.shared_up_0(seg), self.shared_up_1(seg)]
        per_stage = [counts for counts in (self.counts[:6], self.counts[6:7], self.counts[7:])]
        for actv, counts in zip(stacked, per_stage, strict=True):
            chunks = list(F.relu(actv).split(hidden, dim=1))
            for n in counts:
                yield [chunks.pop(0) for _ in range(n)]

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        seg = feature.to(self.dtype, memory_format=torch.channels_last)
        x = self.fc(seg)
        for block, actvs in zip(self.blocks, self._activations(seg), strict=True):
            x = block(x, actvs)
        x = self.conv_img(F.leaky_relu(x, 2e-1))
        return torch.sigmoid(F.pixel_shuffle(x.float(), self.upscale)).contiguous()


def _spades_of(blocks: list[SPADEResnetBlock]) -> list[SPADE]:
    """Every SPADE of the blocks, in the order :meth:`FastDecoder._activations` splits."""
    spades = []
    for block in blocks:
        spades += [block.norm_0, block.norm_1] + ([block.norm_s] if block.learned_shortcut
                                                  else [])
    return spades


def _avg_pool_hw(x: torch.Tensor) -> torch.Tensor:
    """``avg_pool3d(x, (1, 2, 2))`` through the 2-D pool, which has a bfloat16 kernel."""
    b, c, d, h, w = x.shape
    planes = x.transpose(1, 2).reshape(b * d, c, h, w)
    return F.avg_pool2d(planes, 2).reshape(b, d, c, h // 2, w // 2).transpose(1, 2)


class _FastHourglass(nn.Module):
    """The dense motion hourglass: batch norms folded, up-blocks through
    :class:`UpsampledConv`."""

    def __init__(self, dense: DenseMotionNetwork) -> None:
        super().__init__()
        encoder, decoder = dense.hourglass.encoder, dense.hourglass.decoder
        self.down = nn.ModuleList(_folded_conv_of(b.conv, b.norm) for b in encoder.down_blocks)
        self.up = nn.ModuleList(UpsampledConv(*_fold_norm(b.conv, b.norm), 2)
                                for b in decoder.up_blocks)
        self.conv = _folded_conv_of(decoder.conv, decoder.norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        for conv in self.down:
            skips.append(_avg_pool_hw(F.relu(conv(skips[-1]))))
        out = skips.pop()
        for up in self.up:
            out = torch.cat([F.relu(up(out)), skips.pop()], dim=1)
        return F.relu(self.conv(out))


def _depth_folded(conv: nn.Conv2d, channels: int) -> nn.Module:
    """The occlusion conv reads the (C, D) volume flattened to C * D channels: as a conv3d
    whose kernel spans the whole depth it reads the volume itself, with no reshaping copy."""
    weight = _conv_weight(conv)
    folded = weight.reshape(weight.shape[0], channels, -1, *weight.shape[2:])
    padding = conv.padding[0]
    return _Conv(folded, _conv_bias(conv), (0, padding, padding))


class FastWarping(nn.Module):
    """W (:class:`WarpingNetwork`) for the fast path: the hourglass, the mask and occlusion
    convs and the output convs in bfloat16, channels-last; the keypoint Gaussians, grid
    sampling, softmax and deformation in float32. Takes and returns float32."""

    def __init__(self, warping: WarpingNetwork, dtype: torch.dtype = FAST_DTYPE) -> None:
        super().__init__()
        dense = warping.dense_motion_network
        self.kp_variance = dense.kp_variance
        self.compress = _folded_conv_of(dense.compress, dense.norm)
        self.dtype = dtype
        self.hourglass = _FastHourglass(dense).to(dtype)
        self.mask = _conv_of(dense.mask).to(dtype)
        self.occlusion = None if dense.occlusion is None else _depth_folded(
            dense.occlusion, dense.hourglass.out_filters).to(dtype)
        self.third = _folded_conv_of(warping.third.conv, warping.third.norm).to(dtype)
        self.fourth = _conv_of(warping.fourth).to(dtype)

    def _hourglass_input(self, feature_3d: torch.Tensor, kp_driving: torch.Tensor,
                         kp_source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sparse motions (B, K+1, D, H, W, 3) and, per motion, the heatmap and the
        compressed feature sampled by it, (B, (K+1) * 5, D, H, W), as DenseMotionNetwork."""
        b, _, d, h, w = feature_3d.shape
        feature = F.relu(self.compress(feature_3d))
        grid = make_coordinate_grid((d, h, w), kp_source)
        identity = grid[None, None]
        per_kp = identity - kp_driving[:, :, None, None, None, :] + kp_source[:, :, None, None,
                                                                              None, :]
        motions = torch.cat([identity.expand(b, 1, d, h, w, 3), per_kp], dim=1)
        k1, c = motions.shape[1], feature.shape[1]
        repeated = feature[:, None].expand(b, k1, c, d, h, w).reshape(b * k1, c, d, h, w)
        deformed = F.grid_sample(repeated, motions.reshape(b * k1, d, h, w, 3),
                                 align_corners=False).view(b, k1, c, d, h, w)
        heat = (keypoint_gaussians(kp_driving, grid, self.kp_variance)
                - keypoint_gaussians(kp_source, grid, self.kp_variance))
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1).unsqueeze(2)
        return motions, torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w)

    def forward(self, feature_3d: torch.Tensor, kp_driving: torch.Tensor,
                kp_source: torch.Tensor) -> WarpingOutput:
        b, _, _, h, w = feature_3d.shape
        motions, hourglass_in = self._hourglass_input(feature_3d, kp_driving, kp_source)
        prediction = self.hourglass(hourglass_in.to(self.dtype,
                                                    memory_format=torch.channels_last_3d))
        mask = F.softmax(self.mask(prediction).float(), dim=1)
        deformation = (motions.permute(0, 1, 5, 2, 3, 4) * mask.unsqueeze(2)).sum(dim=1)
        deformation = deformation.permute(0, 2, 3, 4, 1)
        occlusion = None
        if self.occlusion is not None:
            occlusion = torch.sigmoid(self.occlusion(prediction).float()).squeeze(2)
        warped = F.grid_sample(feature_3d, deformation, align_corners=False)
        flat = warped.view(b, -1, h, w).to(self.dtype, memory_format=torch.channels_last)
        out = self.fourth(F.leaky_relu(self.third(flat), 0.01)).float()
        if occlusion is not None:
            out = out * occlusion
        return WarpingOutput(occlusion, deformation, out.contiguous())
