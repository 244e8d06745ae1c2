"""What msdet's backbones share: argument checks, pretrained loading, and the
ResNet family's per-block stage building.

- ``ResNetFamily``: the base of every ResNet-family backbone (put before
  mmdet's ``ResNet`` / ``ResNeXt``). It checks mmdet's ResNet arguments
  (``check_resnet_args``), builds each stage with per-block arguments
  (``block_args``), applies mmdet's ``zero_init_residual`` to msdet's block
  classes and loads pretrained weights as ``PretrainedMixin`` does.
- ``PretrainedMixin``: ``init_cfg=dict(type='Pretrained', checkpoint=...)``
  must be a local file (checked when the backbone is built) and must fit
  (checked when it is loaded, by ``init_weights``): a tensor of another shape
  is refused naming the first such key, and a checkpoint that fills fewer
  than half of the backbone's tensors is refused with the count and the
  likely cause (a whole detector's keys with a ``backbone.`` prefix, or
  another architecture).
"""
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List

from mmdet.models.backbones.resnext import ResNeXt
from mmdet.models.layers import ResLayer
from mmengine.logging import print_log
from mmengine.model import Sequential
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict

from ...utils.validation import check_choice, check_int, check_ints


def check_stage_args(owner, depth, depths, num_stages, max_stages,
                     out_indices, frozen_stages):
    """Depth, stage count, output stages and frozen stages of a backbone
    with ``max_stages`` stages (ResNet family, VGG)."""
    check_choice(owner, 'depth', depth, depths)
    check_int(owner, 'num_stages', num_stages, 1, max_stages)
    check_ints(owner, 'out_indices', out_indices, low=0, high=num_stages - 1)
    check_int(owner, 'frozen_stages', frozen_stages, -1, num_stages,
              allowed=f'an int in -1 (none)..{num_stages}')


def check_resnet_args(owner, arch_settings, depth, num_stages=4,
                      strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1),
                      out_indices=(0, 1, 2, 3), frozen_stages=-1,
                      base_channels=64, init_cfg=None, **_):
    """mmdet ResNet's arguments (which it only asserts), one clear error at
    build time; also the ``Pretrained`` checkpoint (``check_pretrained``)."""
    check_stage_args(owner, depth, arch_settings, num_stages, 4, out_indices,
                     frozen_stages)
    for arg, values in (('strides', strides), ('dilations', dilations)):
        check_ints(owner, arg, values, count=num_stages, low=1,
                   allowed=f'{num_stages} ints >= 1 (one per stage)')
    check_int(owner, 'base_channels', base_channels, 1)
    check_pretrained(owner, init_cfg)


def _as_list(init_cfg) -> List[dict]:
    if init_cfg is None:
        return []
    return list(init_cfg) if isinstance(init_cfg, (list, tuple)) else [
        init_cfg]


def _is_pretrained(cfg) -> bool:
    return isinstance(cfg, dict) and cfg.get('type') in ('Pretrained',
                                                         PretrainedInit)


def check_pretrained(owner, init_cfg):
    """A ``Pretrained`` checkpoint is a local file that exists (msdet
    downloads nothing)."""
    for cfg in filter(_is_pretrained, _as_list(init_cfg)):
        ckpt = str(cfg.get('checkpoint', ''))
        if '://' in ckpt:
            raise ValueError(
                f'{owner}: init_cfg checkpoint {ckpt!r} is a URL; msdet loads '
                'only local files (no network). Download the weights '
                'yourself, convert them with tools/model_converters/ if '
                'needed, and give the local path.')
        if not osp.isfile(ckpt):
            raise FileNotFoundError(
                f'{owner}: pretrained checkpoint {ckpt!r} not found. Bring an '
                'ImageNet-pretrained backbone checkpoint and set '
                "init_cfg=dict(type='Pretrained', checkpoint=PATH), or train "
                'from scratch with init_cfg=None (then also set '
                'norm_eval=False and frozen_stages=-1).')


def read_state_dict(owner, cfg) -> Dict:
    """The state dict a ``Pretrained`` init config gives, as mmengine's
    ``PretrainedInit`` reads it: the checkpoint's ``state_dict`` (or the
    checkpoint itself); with ``prefix``, the keys under it, prefix removed,
    else DataParallel's ``module.`` removed. State dict metadata (module
    versions) follows the keys."""
    path = cfg['checkpoint']
    ckpt = CheckpointLoader.load_checkpoint(path,
                                            cfg.get('map_location', 'cpu'))
    if not isinstance(ckpt, dict):
        raise ValueError(f'{owner}: checkpoint {path!r} holds a '
                         f'{type(ckpt).__name__}, not a state dict.')
    state_dict = ckpt.get('state_dict', ckpt)
    prefix = cfg.get('prefix')
    if prefix:
        prefix = prefix.rstrip('.') + '.'
        keys = {k: k[len(prefix):] for k in state_dict if k.startswith(prefix)}
        if not keys:
            raise ValueError(
                f'{owner}: checkpoint {path!r} has no key starting with the '
                f'init_cfg prefix {prefix!r} (e.g. {list(state_dict)[:3]}).')
    else:
        prefix = 'module.'
        keys = {k: k[len(prefix):] if k.startswith(prefix) else k
                for k in state_dict}
    out = OrderedDict((new, state_dict[old]) for old, new in keys.items())
    out._metadata = OrderedDict()
    for key, value in getattr(state_dict, '_metadata', {}).items():
        if (key + '.').startswith(prefix):  # 'backbone' -> '', ...
            out._metadata[(key + '.')[len(prefix):-1]] = value
        elif prefix == 'module.':
            out._metadata[key] = value
    return out


def check_fits(owner, own: Dict, state_dict: Dict, path: str):
    """Refuse a checkpoint whose tensors do not fit ``own`` (a state dict):
    a shape mismatch (the first key named), or fewer than half of ``own``'s
    tensors filled (the count and the likely cause)."""
    filled = [k for k in own if k in state_dict]
    for key in filled:
        shape = tuple(getattr(state_dict[key], 'shape', ()))
        if shape != tuple(own[key].shape):
            raise ValueError(
                f'{owner}: checkpoint tensor {key!r} has shape {shape}, the '
                f'model expects {tuple(own[key].shape)}: {path!r} does not '
                f'fit this {owner} (first mismatching key).')
    if 2 * len(filled) >= len(own):
        return
    unknown = [k for k in state_dict if k not in own]
    detector = [k for k in unknown if k.startswith('backbone.')]
    if detector and sum(k[len('backbone.'):] in own
                        for k in detector) > len(filled):
        cause = ("its keys start with 'backbone.': a whole detector's "
                 'checkpoint. Give it to the detector (load_from) or load '
                 "its backbone with init_cfg=dict(type='Pretrained', "
                 "prefix='backbone.', checkpoint=...)")
    else:
        cause = (f'it holds another architecture (e.g. {unknown[:3]}; this '
                 f'{owner} has e.g. {[k for k in own if k not in filled][:3]}'
                 '). Give a checkpoint of this backbone, converted with '
                 'tools/model_converters/ if it comes from another codebase')
    raise ValueError(
        f'{owner}: checkpoint {path!r} fills {len(filled)} of the '
        f"backbone's {len(own)} tensors (fewer than half); {cause}.")


class PretrainedMixin:
    """``init_weights`` that loads a ``Pretrained`` init config's checkpoint
    only if it fits the backbone (``check_fits``); other init configs run
    first, as in mmengine's ``BaseModule``."""

    def init_weights(self):
        init_cfg = self.init_cfg
        pretrained = list(filter(_is_pretrained, _as_list(init_cfg)))
        if not pretrained or self.is_init:
            return super().init_weights()
        self.init_cfg = [c for c in _as_list(init_cfg)
                         if not _is_pretrained(c)] or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = init_cfg
        owner = type(self).__name__
        for cfg in pretrained:
            print_log(f"load {cfg.get('prefix') or 'model'} from: "
                      f"{cfg['checkpoint']}", logger='current')
            state_dict = read_state_dict(owner, cfg)
            check_fits(owner, self.state_dict(), state_dict,
                       cfg['checkpoint'])
            load_state_dict(self, state_dict, strict=False, logger='current')
            if hasattr(self, '_params_init_info'):
                update_init_info(self, init_info=f'{owner}: load from '
                                 f"{cfg['checkpoint']}")


class ResNetFamily(PretrainedMixin):
    """Base of msdet's ResNet-family backbones: put it before mmdet's
    ``ResNet`` or ``ResNeXt`` (``class PSResNet(ResNetFamily, ResNet)``).

    All of mmdet's ResNet arguments keep their meaning and are checked when
    the backbone is built. A subclass sets ``arch_settings`` (its block class
    per depth), keeps what its blocks need on ``self`` before calling
    ``super().__init__``, and returns each block's own keyword arguments from
    ``block_args``. Stages are mmdet's: ``layer{i}.{j}`` is block ``j`` of
    stage ``i``, block 0 strided with the shortcut projection (so mmdet's
    parameter names, and their checkpoints, stay).
    """

    def __init__(self, depth, init_cfg=None, **kwargs):
        check_resnet_args(type(self).__name__, self.arch_settings, depth,
                          init_cfg=init_cfg, **kwargs)
        super().__init__(depth=depth, init_cfg=init_cfg, **kwargs)
        if self.zero_init_residual and init_cfg is None:
            # mmdet zero-initialises the last norm of its own Bottleneck
            # class only; the same for msdet's block classes
            for layer_name in self.res_layers:
                for block in getattr(self, layer_name):
                    block.init_cfg = dict(type='Constant', val=0,
                                          override=dict(name='norm3'))

    def block_args(self, stage: int, num_blocks: int, **stage_args):
        """The keyword arguments of each block of ``stage`` (0-based) that
        differ from the stage's (``stage_args``: mmdet's ``stride``,
        ``dilation``, ``planes``, ...); a list of ``num_blocks`` dicts.
        ``stride`` of block 0 also sets its shortcut's stride."""
        return [{}] * num_blocks

    def make_res_layer(self, **kwargs):
        """Stage ``kwargs['planes'] = base_channels * 2**stage``: block ``j``
        is mmdet's (``ResLayer``) with ``kwargs`` updated by
        ``block_args(...)[j]``; blocks after the first take the stage's
        output width at stride 1."""
        if isinstance(self, ResNeXt):  # what mmdet's ResNeXt adds
            kwargs.update(groups=self.groups, base_width=self.base_width,
                          base_channels=self.base_channels)
        stage = (kwargs['planes'] // self.base_channels).bit_length() - 1
        per_block = self.block_args(stage, **kwargs)
        if len(per_block) != kwargs['num_blocks']:
            raise ValueError(
                f'{type(self).__name__}.block_args gave {len(per_block)} '
                f"dicts for the {kwargs['num_blocks']} blocks of stage "
                f'{stage}.')
        blocks = []
        for args in per_block:
            blocks.append(ResLayer(**dict(kwargs, **args, num_blocks=1))[0])
            kwargs.update(stride=1, inplanes=kwargs['planes'] *
                          kwargs['block'].expansion)
        return Sequential(*blocks)
