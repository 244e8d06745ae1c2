"""Checks and helpers shared by msdet's ResNet-family backbones."""
import os.path as osp

from mmdet.models.backbones.resnet import ResNet


def check_resnet_args(cls, depth, num_stages=4, out_indices=(0, 1, 2, 3),
                      frozen_stages=-1, init_cfg=None, strides=None,
                      dilations=None):
    """Raise one clear error at build time for arguments mmdet only asserts.

    ``strides`` / ``dilations`` are checked only when given (one positive
    int per stage). Also checks that a ``Pretrained`` checkpoint given as a
    local path exists, so a missing file is reported when the model is
    built, not when the runner initialises weights.
    """
    name = cls.__name__
    if depth not in cls.arch_settings:
        raise ValueError(f'{name}: depth={depth!r} is not supported; allowed: '
                         f'{sorted(cls.arch_settings)}.')
    if not 1 <= num_stages <= 4:
        raise ValueError(f'{name}: num_stages={num_stages!r}, allowed 1..4.')
    bad = [i for i in out_indices if not 0 <= i < num_stages]
    if bad or not out_indices:
        raise ValueError(f'{name}: out_indices={tuple(out_indices)!r} out of '
                         f'range; allowed: non-empty, each in 0..'
                         f'{num_stages - 1}.')
    if not -1 <= frozen_stages <= num_stages:
        raise ValueError(f'{name}: frozen_stages={frozen_stages!r}, allowed '
                         f'-1 (none) .. {num_stages}.')
    for arg, values in (('strides', strides), ('dilations', dilations)):
        if values is None:
            continue
        values = tuple(values)
        if len(values) != num_stages or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1
                for v in values):
            raise ValueError(f'{name}: {arg}={values!r}; allowed: '
                             f'{num_stages} positive ints (one per stage).')
    check_pretrained(init_cfg, name)


def check_pretrained(init_cfg, name):
    """A local ``Pretrained`` checkpoint must exist (no downloads in msdet)."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    for cfg in cfgs:
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            continue
        ckpt = str(cfg.get('checkpoint', ''))
        if '://' in ckpt:
            raise ValueError(
                f'{name}: init_cfg checkpoint {ckpt!r} is a URL; msdet loads '
                'only local files (no network). Download the weights '
                'yourself, convert them with tools/model_converters/ if '
                'needed, and give the local path.')
        if not osp.isfile(ckpt):
            raise FileNotFoundError(
                f'{name}: pretrained checkpoint {ckpt!r} not found. Bring an '
                'ImageNet-pretrained backbone checkpoint and set '
                "init_cfg=dict(type='Pretrained', checkpoint=PATH), or train "
                'from scratch with init_cfg=None (then also set '
                'norm_eval=False and frozen_stages=-1).')


def zero_init_last_norm(backbone: ResNet, init_cfg, norm_name: str = 'norm3'):
    """Apply mmdet's ``zero_init_residual`` to subclassed blocks.

    mmdet's ResNet only recognises its own ``Bottleneck`` class when it zero
    initialises the last norm of every residual block; msdet's blocks are
    subclasses, so the same init config is set here. A no-op when the
    backbone loads pretrained weights (``init_cfg`` given).
    """
    if not backbone.zero_init_residual or init_cfg is not None:
        return
    for layer_name in backbone.res_layers:
        for block in getattr(backbone, layer_name):
            block.init_cfg = dict(
                type='Constant', val=0, override=dict(name=norm_name))
