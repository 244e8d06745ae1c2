"""Data-driven neuron allocation for ScaleNet (paper 3.2, algorithm 1).

    python tools/allocate_neurons.py CONFIG CHECKPOINT --out structure.json
        [--budget 1.0] [--balance 0.0] [--cfg-options k=v ...]

CONFIG's ``model.backbone`` is the trained seed ScaleNet (e.g.
``configs/scalenet/faster_rcnn_scalenet50_seed_fpn_1x.py``) and CHECKPOINT
its weights (an mmengine checkpoint of the whole model, or of the backbone
alone). Every SA block keeps its neurons with the largest
``|gamma| / FLOPs**balance`` within ``budget`` x the FLOPs of the ResNet 3x3
conv it replaces; the structure is written to ``--out``. Retrain from
scratch with ``model.backbone.structure=structure.json``.
"""
import argparse

import msdet  # noqa: F401  (registers msdet modules, torch.load fix)
from mmengine.config import DictAction
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint

from msdet.models.backbones import ScaleNet
from msdet.models.backbones.scalenet_allocation import \
    allocate_neurons
from msdet.utils.config import load_config
from msdet.utils.fileio import dump_json
from msdet.utils.checkpoint import check_checkpoint_file
from msdet.utils.cli import run_tool


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='ScaleNet neuron allocation')
    p.add_argument('config', help='config whose model.backbone is the seed')
    p.add_argument('checkpoint', help='trained seed network checkpoint')
    p.add_argument('--out', required=True, help='structure file to write')
    p.add_argument('--budget', type=float, default=1.0,
                   help="each SA block's FLOPs budget, as a multiple of the "
                   'ResNet 3x3 conv it replaces (paper: 1.0)')
    p.add_argument('--balance', type=float, default=0.0,
                   help='exponent b of the FLOPs in the score (paper: 0)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config keys')
    return p.parse_args(argv)


def load_backbone(config, checkpoint, cfg_options=None):
    """The config's backbone with the checkpoint's weights (strictly)."""
    check_checkpoint_file(checkpoint)
    cfg = load_config(config, cfg_options)
    bb_cfg = cfg.model.backbone
    bb_cfg.init_cfg = None  # the checkpoint supplies every weight
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope',
                                                      'mmdet')):
        backbone = MODELS.build(bb_cfg)
    if not isinstance(backbone, ScaleNet):
        raise TypeError(f'{config}: model.backbone is {bb_cfg.type}; the '
                        'allocation needs a ScaleNet (e.g. a seed network, '
                        'structure=dict(seed=C)).')
    state = _load_checkpoint(checkpoint, map_location='cpu')
    state = state.get('state_dict', state)
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items()
                 if k.startswith('backbone.')}
    backbone.load_state_dict(state, strict=True)
    return backbone


def main(argv=None):
    args = parse_args(argv)
    backbone = load_backbone(args.config, args.checkpoint, args.cfg_options)
    structure = allocate_neurons(backbone, args.budget, args.balance)
    dump_json(structure, args.out)
    alloc = structure['allocation']
    print('block  ' + '  '.join(f's={s}' for s in structure['scales']) +
          '  MFLOPs/budget')
    for k, entry in enumerate(structure['blocks']):
        print(f'{k:5d}  ' + '  '.join(f'{c:3d}' for c in entry[:-1]) +
              f'  {alloc["block_flops"][k] / 1e6:.1f}/'
              f'{alloc["block_budgets"][k] / 1e6:.1f}')
    print(f'structure written to {args.out}')
    return structure


if __name__ == '__main__':
    run_tool(main)
