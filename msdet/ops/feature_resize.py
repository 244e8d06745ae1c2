"""The resize operation G(x; s) of resizable networks (Resizable paper, eq. 1).

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


def resized_size(size: Sequence[int], factor: float):
    """``(h, w)`` of ``G(x; factor)`` for an input of spatial ``size``."""
    return tuple(max(1, int(round(factor * int(v)))) for v in size)


def feature_resize(x: torch.Tensor, factor: Union[float, int]) -> torch.Tensor:
    """``G(x; factor)``: bilinear resize of ``x`` (N, C, H, W) (eq. 1)."""
    size = resized_size(x.shape[-2:], factor)
    if size == tuple(int(v) for v in x.shape[-2:]):
        return x
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)
