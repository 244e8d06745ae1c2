"""The model to export: at a fixed sub-network, and the input size the
config tests at (the model itself: ``msdet.utils.config.build_model``)."""
import math

import torch

from ..ops.switchable import set_subnet, subnet_space


def parse_subnet(items) -> dict:
    """``['width=0.5']`` -> ``{'width': 0.5}``; one error for an item that
    is not ``key=number``."""
    settings = {}
    for item in items or ():
        key, sep, value = item.partition('=')
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or not key or number is None:
            raise ValueError(f'--subnet {item!r}: allowed: key=number, e.g. '
                             'width=0.5 or resize1=0.75.')
        settings[key] = number
    return settings


def apply_subnet(model, settings: dict) -> str:
    """Switch ``model`` to ``settings`` (``msdet.ops.set_subnet``, which
    refuses unknown keys and values out of range); returns the sub-network
    in words."""
    space = subnet_space(model)
    if settings:
        set_subnet(model, **settings)
        return ', '.join(f'{k}={v:g}' for k, v in settings.items())
    if space:
        return ('the default (largest) one; the model can switch '
                + ', '.join(f'{k} in {v}' for k, v in space.items()))
    return ''


def _find_resize(pipeline):
    for step in pipeline or ():
        if str(step.get('type', '')).split('.')[-1] == 'Resize' and \
                step.get('scale') is not None:
            return step
    return None


def default_shape(cfg) -> tuple:
    """``(h, w)`` the config tests at: its test ``Resize`` scale (a
    landscape image for ``keep_ratio``), padded up to the data
    preprocessor's size divisor, else the preprocessor's ``size`` (mmseg's
    crop size); one error if the config has neither."""
    loader = cfg.get('test_dataloader') or {}
    resize = _find_resize(loader.get('dataset', {}).get('pipeline')) or \
        _find_resize(cfg.get('test_pipeline'))
    pre = cfg.model.get('data_preprocessor') or {}
    if resize is None:
        if pre.get('size'):
            return tuple(int(v) for v in pre['size'])
        raise ValueError('the config has no test Resize scale or data '
                         'preprocessor size to take the input size from; '
                         'give --shape H W.')
    scale = resize['scale']
    scale = (scale, scale) if isinstance(scale, int) else tuple(scale)
    h, w = ((min(scale), max(scale)) if resize.get('keep_ratio')
            else (scale[1], scale[0]))
    div = pre.get('pad_size_divisor') or pre.get('size_divisor') or 1
    return tuple(int(math.ceil(v / div) * div) for v in (h, w))


def random_images(shape, batch=1, seed=0) -> torch.Tensor:
    """A normalised-looking random batch ``(batch, 3, h, w)``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *shape, generator=g)
