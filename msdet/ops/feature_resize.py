"""Resizing feature maps: the resize operation G(x; s) of resizable networks
(Resizable paper, eq. 1), the exact 2x average-pool / bilinear upsample
pair of Elastic blocks (``avg_pool2x``, ``upsample2x``) and the max pools of
ScaleNet's SA blocks (``max_pool``).

``G`` changes the spatial size of a feature map by an arbitrary, possibly
non-integer factor ``s`` with bilinear interpolation (section 3.1: "the
s is a arbitrary number and G represent the bilinear interpolation"), in
place of the fixed ``s = 0.5`` of a strided conv / pooling.

Choices the paper leaves open, written down here:

- output size ``max(1, round(s * H)) x max(1, round(s * W))`` (rounded to
  the nearest pixel, not floored as ``scale_factor=`` would), so a factor
  gives the same size for every input whose ``s * H`` rounds alike;
- ``align_corners=False`` (PyTorch's default, the pixel-area convention of
  image resizing), no antialiasing;
- ``s == 1`` (or a size that rounds to the input's) returns the input itself:
  a resizable network at factor 1 is exactly the plain network.

Under tracing (``torch.onnx.export``) the sizes are computed in the graph
from the input's shape (``Shape``, a ``Cast`` to double, ``Mul``, ``Round``,
``Clip``: the same double-precision product and round-half-to-even as
Python's ``round``), so an exported graph resizes every input size as
PyTorch does instead of replaying the sizes of the export input; where the
size happens to round to the input's, the graph resizes to the same size,
which bilinear interpolation leaves unchanged.
"""
from typing import Sequence, Union

import torch
import torch.nn.functional as F


def check_factors(factors, name: str) -> list:
    """A non-empty list of distinct factors in (0, 1], else one clear error."""
    allowed = 'a non-empty list of distinct numbers in (0, 1]'
    try:
        out = [float(f) for f in factors]
    except (TypeError, ValueError):
        raise ValueError(f'{name}: resize factors {factors!r}; allowed: '
                         f'{allowed}.') from None
    bad = [f for f in factors if isinstance(f, bool)]
    if not out or bad or any(not 0 < f <= 1 for f in out) or \
            len(set(out)) != len(out):
        raise ValueError(f'{name}: resize factors {list(factors)!r}; '
                         f'allowed: {allowed} (0 < s <= 1: G only shrinks, '
                         'paper eq. 1), e.g. [0.5, 0.625, 0.75, 0.875, 1.0].')
    return out


def spatial_size(x: torch.Tensor) -> tuple:
    """``(h, w)`` of ``x`` as ints; under tracing the graph's size values
    (0-dim tensors), so sizes computed from them stay in the graph."""
    if torch.jit.is_tracing():
        return tuple(x.shape[-2:])
    return tuple(int(v) for v in x.shape[-2:])


def resized_size(size: Sequence, factor: float) -> tuple:
    """``(h, w)`` of ``G(x; factor)`` for an input of spatial ``size`` (ints,
    or :func:`spatial_size`'s graph values under tracing)."""
    if torch.jit.is_tracing():
        return tuple(
            torch.round(v.double() * factor).clamp(min=1).long()
            for v in size)
    return tuple(max(1, int(round(factor * int(v)))) for v in size)


def resize_to(x: torch.Tensor, size: Sequence) -> torch.Tensor:
    """``x`` resized bilinearly to ``size``; ``x`` itself where it has that
    size already (under tracing the resize is always recorded: at equal
    sizes it is the identity)."""
    if not torch.jit.is_tracing() and spatial_size(x) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


def feature_resize(x: torch.Tensor, factor: Union[float, int]) -> torch.Tensor:
    """``G(x; factor)``: bilinear resize of ``x`` (N, C, H, W) (eq. 1)."""
    if factor == 1:
        return x
    return resize_to(x, resized_size(spatial_size(x), factor))


def _aten(x: torch.Tensor) -> bool:
    """Whether aten's op is used rather than the CPU rewrites below: on
    GPUs, under tracing (FLOP counting, ONNX export) and under
    ``torch.compile``, which generates its own kernels (and cannot capture
    the rewrites' ``out=`` views without a graph break)."""
    return x.is_cuda or torch.jit.is_tracing() or \
        torch.compiler.is_compiling()


def cpu_inference(x: torch.Tensor) -> bool:
    """Whether ``x`` may take a CPU rewrite that has no autograd of its own
    (``max_pool``'s strided maxima): eager on CPU (not ``_aten``) and no
    gradient to be taken through it."""
    return not (_aten(x) or (x.requires_grad and torch.is_grad_enabled()))


def avg_pool2x(x: torch.Tensor) -> torch.Tensor:
    """``F.avg_pool2d(x, 2, ceil_mode=True)``: 2x2 averages, an odd last
    row/column averaging its real pixels (= replicate padding to even).

    On CPU computed by two strided adds (several times faster than aten's
    NCHW kernel), gradient by aten's ``avg_pool2d_backward``; elsewhere, and
    under tracing or compilation (``_aten``), aten's op itself.
    """
    if _aten(x):
        return F.avg_pool2d(x, 2, ceil_mode=True)
    return _AvgPool2x.apply(x)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=2, mode='bilinear',
    align_corners=False)``: rows ``2i`` / ``2i + 1`` are ``0.75 x[i] + 0.25
    x[i -/+ 1]`` (edges clamped), then the same along columns.

    On CPU computed by four ``lerp`` passes (aten's NCHW kernel converts
    layouts and is several times slower), gradient by aten's
    ``upsample_bilinear2d_backward``; elsewhere, and under tracing or
    compilation (``_aten``), aten's op itself.
    """
    if _aten(x):
        return F.interpolate(x, scale_factor=2, mode='bilinear',
                             align_corners=False)
    return _Upsample2x.apply(x)


def max_pool(x: torch.Tensor, kernel) -> torch.Tensor:
    """``F.max_pool2d(x, kernel)`` (stride = kernel, floor mode).

    Without autograd on CPU computed as maxima of strided slices, rows then
    columns (several times faster than aten's NCHW kernel, which also
    computes indices); otherwise aten's op.
    """
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    if not cpu_inference(x):
        return F.max_pool2d(x, (kh, kw))
    h = x.shape[-2] // kh * kh
    rows = x[..., 0:h:kh, :]
    for i in range(1, kh):
        rows = torch.maximum(rows, x[..., i:h:kh, :])
    w = x.shape[-1] // kw * kw
    out = rows[..., 0:w:kw]
    for i in range(1, kw):
        out = torch.maximum(out, rows[..., i:w:kw])
    return out


class _AvgPool2x(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        h, w = x.shape[-2:]
        if h % 2 or w % 2:
            x = F.pad(x, (0, w % 2, 0, h % 2), mode='replicate')
        rows = x[..., 0::2, :] + x[..., 1::2, :]
        return rows[..., 0::2].add_(rows[..., 1::2]).mul_(0.25)

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return torch.ops.aten.avg_pool2d_backward(grad, x, [2, 2], [2, 2],
                                                  [0, 0], True, True, None)


class _Upsample2x(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x):
        ctx.size = tuple(x.shape)
        y = _lerp2x(x, -2)
        return _lerp2x(y, -1)

    @staticmethod
    def backward(ctx, grad):
        n, c, h, w = ctx.size
        return torch.ops.aten.upsample_bilinear2d_backward(
            grad.contiguous(), [2 * h, 2 * w], [n, c, h, w], False, 2.0, 2.0)


def _lerp2x(x, dim):
    """2x linear upsampling (half-pixel centres) of ``x`` along ``dim``."""
    shape = list(x.shape)
    n = shape[dim]
    shape[dim] = 2 * n
    out = x.new_empty(shape)

    def sl(t, *args):  # t[..., slice(*args), (:)] at dim
        return t[(slice(None), ) * (t.dim() + dim) + (slice(*args), )]

    torch.lerp(sl(x, 1, None), sl(x, None, -1), 0.25,
               out=sl(out, 2, None, 2))
    torch.lerp(sl(x, None, -1), sl(x, 1, None), 0.25,
               out=sl(out, 1, -1, 2))
    sl(out, 0, 1).copy_(sl(x, 0, 1))
    sl(out, -1, None).copy_(sl(x, -1, None))
    return out
