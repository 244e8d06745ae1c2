"""Scale aggregation (ScaleNet, Li et al. CVPR 2019, section 3.1, eq. 1-4)."""
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer

from ..utils.validation import check_choice, is_int
from .feature_resize import max_pool

#: Downsampling factors of ScaleNet's four scales (paper table 1).
SCALES = (1, 2, 4, 7)
#: Input side of ImageNet training, the resolution ScaleNet was designed at.
DESIGN_INPUT = 224
#: How SA blocks resample (``ScaleAggregation`` / ``ScaleNet`` ``resample``):
#: the paper's nearest upsampling, or exactly what the reference release does.
RESAMPLE = ('nearest', 'release')


class ScaleAggregation(nn.Module):
    """``Y = cat_l U_l(T_l(D_l(X)))`` (eq. 4), the op that replaces a 3x3 conv.

    Scale ``l`` max-pools by ``s_l`` (kernel = stride = ``s_l``, eq. 1),
    convolves to ``C_l`` channels (eq. 2) and resizes back to the input size
    (eq. 3); the scales are concatenated in order. A scale with ``C_l = 0``
    has no layers at all. Normalisation and activation follow in the
    enclosing block (BN after the upsample).

    Choices where the paper is silent:

    - Kernel size is fixed by the structure, never by the input: a scale
      whose pooling window covers the whole map at the design resolution
      (``design_size <= s_l``, e.g. ``s = 7`` on the 7x7 last stage at 224
      px) gets a 1x1 conv, where a padded 3x3 conv would only use its centre
      tap; every other scale gets a 3x3 conv. This reproduces the published
      ScaleNet-50 size (31.483M parameters, see tests).
    - Pooling rounds down (``floor(H / s)``), as the published FLOPs assume
      (3.818 GFLOPs at 224 px); a map smaller than the window is pooled to
      one pixel, so any input size works and the output size always equals
      the input size.
    - Upsampling (``resample``): ``'nearest'`` (default) is the paper's
      nearest-neighbour interpolation (3.1: "resizing with the nearest
      neighbor interpolation") at every size. ``'release'`` is what the
      reference release's PyTorch code does, for its weights: nearest where
      the map's height and width are multiples of the pooled map's, else
      bilinear with ``align_corners=False`` (``F.upsample``'s default), e.g.
      scale 4 on a 14x14 map (pooled 3x3) and every non-dividing size of a
      detection input. The two agree wherever every pooled side divides its
      map (e.g. 896x896 with the published structures).
    - ``dilation`` dilates every 3x3 conv, as mmdet's ResNet dilates its 3x3
      conv in a dilated stage; pooling factors are unchanged.

    Args:
        in_channels (int): input channels.
        branch_channels (Sequence[int]): ``C_l`` per scale, ``>= 0``, at
            least one positive.
        design_size (int): side of the input map at a 224x224 image.
        scales (Sequence[int]): pooling factors ``s_l``, default
            ``(1, 2, 4, 7)``.
        dilation (int): dilation of the 3x3 convs.
        conv_cfg (dict, optional): conv layer config (mmcv).
        resample (str): ``'nearest'`` (paper) or ``'release'``, see above.
    """

    def __init__(self,
                 in_channels: int,
                 branch_channels: Sequence[int],
                 design_size: int,
                 scales: Sequence[int] = SCALES,
                 dilation: int = 1,
                 conv_cfg=None,
                 resample: str = 'nearest'):
        super().__init__()
        check_branches(branch_channels, scales, design_size)
        check_choice('ScaleAggregation', 'resample', resample, RESAMPLE)
        self.resample = resample
        self.in_channels = in_channels
        self.branch_channels = tuple(branch_channels)
        self.scales = tuple(scales)
        self.design_size = design_size
        self.out_channels = sum(branch_channels)
        self.branches = nn.ModuleDict()
        for idx, (c, s) in enumerate(zip(branch_channels, scales)):
            if c == 0:
                continue
            k = self.kernel_size(s)
            self.branches[str(idx)] = build_conv_layer(
                conv_cfg, in_channels, c, kernel_size=k,
                padding=dilation * (k // 2), dilation=dilation if k > 1 else 1,
                bias=False)

    def kernel_size(self, scale: int) -> int:
        """3, or 1 where the pool covers the whole design-size map."""
        return 1 if self.design_size <= scale else 3

    def neuron_flops(self) -> List[int]:
        """Multiply-adds of one output channel of each scale at the design
        resolution (paper 3.2's ``O_kl``); absent scales included."""
        return [self.kernel_size(s)**2 * self.in_channels *
                max(self.design_size // s, 1)**2 for s in self.scales]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.jit.is_tracing() or torch.compiler.is_compiling()
                or (x.requires_grad and torch.is_grad_enabled())):
            # eq. 4 as written (ONNX export, FLOP counting, torch.compile,
            # training): no branch on the sizes, so one compiled graph
            # serves every block and every input size
            return self._forward_cat(x)
        # inference: the scales written into one buffer (an integer nearest
        # upsample is one broadcast copy into its slice: no resized map, no
        # cat), coarse pools from finer pooled maps
        n, _, h, w = x.shape
        out = x.new_empty(n, self.out_channels, h, w)
        pooled = {1: x}
        start = 0
        for idx, conv in self.branches.items():
            s = self.scales[int(idx)]
            y = conv(self._pooled(pooled, s))
            dst = out[:, start:start + y.shape[1]]
            start += y.shape[1]
            fh, fw = h // y.shape[-2], w // y.shape[-1]
            if fh * y.shape[-2] != h or fw * y.shape[-1] != w:
                dst.copy_(self.upsample(y, (h, w)))
            elif fh == fw == 1:
                dst.copy_(y)
            else:  # nearest: every pooled pixel repeated fh x fw times
                dst.view(n, y.shape[1], y.shape[-2], fh, y.shape[-1],
                         fw).copy_(y[:, :, :, None, :, None].expand(
                             -1, -1, -1, fh, -1, fw))
        return out

    def _pooled(self, pooled, s):
        """``D_l(X)``: max pool by ``s`` (a map smaller than ``s`` whole).
        A coarser scale pools a finer scale's pooled map when ``s`` is a
        multiple of it (``floor(floor(h / a) / b) =
        floor(h / ab)``, the windows nest): fewer, smaller passes."""
        if s in pooled:
            return pooled[s]
        x = pooled[1]
        h, w = x.shape[-2:]
        src = max(a for a in pooled if s % a == 0) if s <= min(h, w) else 1
        k = s // src  # <= the side of pooled[src] where src > 1
        pooled[s] = max_pool(pooled[src], (min(k, h), min(k, w)))
        return pooled[s]

    def _forward_cat(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 4 op by op: pool, conv, upsample each scale; concatenate."""
        h, w = x.shape[-2:]
        outs = []
        for idx, conv in self.branches.items():
            s = self.scales[int(idx)]
            if s == 1:
                outs.append(conv(x))
                continue
            y = conv(max_pool(x, (min(s, h), min(s, w))))
            outs.append(self.upsample(y, (h, w)))
        return torch.cat(outs, dim=1)

    def upsample(self, y: torch.Tensor, size) -> torch.Tensor:
        """``y`` resized to ``size`` (eq. 3) as ``resample`` says."""
        h, w = size
        if self.resample == 'release' and (h % y.shape[-2] or
                                           w % y.shape[-1]):
            return F.interpolate(y, size=(h, w), mode='bilinear',
                                 align_corners=False)
        return F.interpolate(y, size=(h, w), mode='nearest')

    def extra_repr(self):
        return (f'{self.in_channels}, branch_channels={self.branch_channels}'
                f', scales={self.scales}, design_size={self.design_size}'
                f', resample={self.resample!r}')


def check_branches(branch_channels, scales, design_size):
    """One ``ValueError`` naming the bad value of an SA block's layout."""
    scales, branch_channels = list(scales), list(branch_channels)
    if not scales or not all(is_int(s) and s >= 1 for s in scales):
        raise ValueError(f'scales={scales!r}: allowed a non-empty list of '
                         'integers >= 1.')
    if len(branch_channels) != len(scales):
        raise ValueError(
            f'branch channels {branch_channels!r}: need one per scale '
            f'{tuple(scales)}, got {len(branch_channels)}.')
    if not all(is_int(c) and c >= 0 for c in branch_channels):
        raise ValueError(f'branch channels {branch_channels!r}: allowed '
                         'integers >= 0 (0 removes a scale).')
    if not any(branch_channels):
        raise ValueError(f'branch channels {branch_channels!r}: all scales '
                         'are 0; at least one must be > 0.')
    if not (is_int(design_size) and design_size >= 1):
        raise ValueError(f'design size (side) {design_size!r}: allowed an '
                         'integer >= 1.')
