"""ScaleNet structures: the channel allocation of every SA block (paper 3.2).

A structure is a list with one entry per SA block, in network order:
``[C_1, ..., C_L, side]``, where ``C_l`` is the output channel count of the
conv of scale ``l`` (0 removes the scale) and ``side`` the spatial size of the
block's input at a 224x224 image (after the stage's pooling). ``side`` fixes
each scale's kernel size (see ``ScaleAggregation``), so a checkpoint's shapes
never depend on the image size. Files hold a JSON list of entries or a dict
``{"blocks": [...], "layers": [...], "scales": [...]}`` (``layers`` and
``scales`` optional; ``tools/allocate_neurons.py`` writes this form), or
named structures (``{"scalenet50": {...}, ...}``, like the published file),
from which ``scalenet<depth>`` is taken.
"""
import json
import math
import os
import os.path as osp

from ...ops.scale_aggregation import DESIGN_INPUT, SCALES, check_branches
from ...utils.validation import check_int

_FORMAT = ('one entry per SA block, in network order: [C1, ..., CL, side]; '
           'Cl is the output channel count of the conv of the scale that '
           'max-pools by scales[l] (0 removes it), side the spatial size of '
           "the block's input at a 224x224 input.")

#: Allocations published with the ScaleNet paper's reference release
#: (``structures/<name>.json``; a name is a valid ``ScaleNet(structure=)``).
#: ScaleNet-50 has 31.483M parameters and 3.818 GFLOPs with the ImageNet
#: classifier (PSConv table 2), ScaleNet-101 7.5 and ScaleNet-152 11.2
#: GFLOPs (paper table 3); ScaleNet-50-light (table 2, fig. 2) is ResNet-50
#: with 29% fewer FLOPs (section 3.4).
PUBLISHED = {
    'scalenet50': [
        [62, 9, 5, 12, 56], [55, 27, 5, 1, 56], [59, 26, 0, 3, 56],
        [125, 41, 6, 3, 28], [90, 39, 9, 37, 28], [106, 56, 4, 9, 28],
        [116, 56, 3, 0, 28], [223, 71, 55, 0, 14], [196, 104, 44, 5, 14],
        [195, 98, 52, 4, 14], [155, 128, 66, 0, 14], [134, 129, 86, 0, 14],
        [120, 127, 98, 4, 14], [237, 354, 106, 0, 7], [172, 435, 90, 0, 7],
        [138, 462, 97, 0, 7],
    ],
    'scalenet50_light': [
        [30, 8, 10, 16, 56], [30, 9, 9, 16, 56], [30, 27, 7, 0, 56],
        [59, 55, 13, 1, 28], [59, 43, 8, 18, 28], [59, 57, 12, 0, 28],
        [59, 59, 9, 1, 28],
        [117, 65, 71, 3, 14], [107, 16, 33, 100, 14], [111, 49, 62, 34, 14],
        [106, 61, 61, 28, 14], [99, 71, 59, 27, 14], [76, 50, 67, 63, 14],
        [141, 182, 189, 0, 7], [83, 9, 185, 235, 7], [77, 16, 184, 235, 7],
    ],
    'scalenet101': [
        [61, 11, 7, 7, 56], [56, 23, 4, 3, 56], [59, 24, 3, 0, 56],
        [123, 41, 1, 6, 28], [126, 38, 1, 6, 28], [127, 41, 3, 0, 28],
        [127, 41, 3, 0, 28], [220, 86, 35, 0, 14], [186, 64, 55, 36, 14],
        [156, 25, 53, 107, 14], [191, 44, 52, 54, 14], [181, 53, 83, 24, 14],
        [221, 82, 34, 4, 14], [177, 62, 90, 12, 14], [130, 75, 102, 34, 14],
        [206, 71, 55, 9, 14], [203, 83, 53, 2, 14], [207, 73, 54, 7, 14],
        [245, 84, 12, 0, 14], [221, 103, 17, 0, 14], [221, 100, 20, 0, 14],
        [158, 99, 84, 0, 14], [220, 106, 15, 0, 14], [173, 92, 73, 3, 14],
        [135, 122, 84, 0, 14], [109, 71, 132, 29, 14], [147, 94, 93, 7, 14],
        [191, 108, 42, 0, 14], [127, 95, 113, 6, 14], [203, 117, 21, 0, 14],
        [282, 377, 23, 0, 7], [279, 388, 15, 0, 7], [84, 442, 155, 1, 7],
    ],
    'scalenet152': [
        [39, 27, 10, 14, 56], [45, 32, 8, 5, 56], [46, 36, 8, 0, 56],
        [55, 26, 35, 63, 28], [89, 44, 19, 27, 28], [93, 62, 14, 10, 28],
        [110, 43, 12, 14, 28], [109, 54, 13, 3, 28], [119, 59, 0, 1, 28],
        [106, 70, 3, 0, 28], [114, 65, 0, 0, 28],
        [224, 102, 31, 1, 14], [163, 49, 68, 78, 14], [115, 65, 73, 105, 14],
        [143, 107, 71, 37, 14], [144, 97, 92, 25, 14], [195, 87, 60, 16, 14],
        [198, 77, 62, 21, 14], [168, 139, 43, 8, 14], [80, 80, 71, 127, 14],
        [138, 88, 93, 39, 14], [107, 93, 65, 93, 14], [230, 103, 25, 0, 14],
        [182, 132, 40, 4, 14], [179, 114, 53, 12, 14], [220, 76, 53, 9, 14],
        [227, 118, 13, 0, 14], [196, 110, 51, 1, 14], [232, 118, 8, 0, 14],
        [224, 114, 20, 0, 14], [214, 100, 43, 1, 14], [139, 114, 97, 8, 14],
        [198, 113, 47, 0, 14], [151, 87, 115, 5, 14], [171, 103, 83, 1, 14],
        [172, 104, 72, 10, 14], [205, 88, 65, 0, 14], [170, 122, 64, 2, 14],
        [170, 98, 81, 9, 14], [223, 101, 32, 2, 14], [192, 114, 52, 0, 14],
        [112, 99, 134, 13, 14], [109, 116, 130, 3, 14],
        [110, 90, 118, 40, 14], [194, 115, 49, 0, 14], [178, 135, 45, 0, 14],
        [209, 135, 14, 0, 14],
        [341, 368, 6, 0, 7], [363, 348, 4, 0, 7], [311, 398, 6, 0, 7],
    ],
}
#: The published allocation ``ScaleNet(depth)`` builds by default.
DEFAULT = {50: 'scalenet50', 101: 'scalenet101', 152: 'scalenet152'}


def design_sides(strides):
    """Input side of each stage's blocks at a 224x224 image: the stem
    reduces by 4, each stage's stride pools (rounding up) before it."""
    sides, side = [], DESIGN_INPUT // 4
    for s in strides:
        side = math.ceil(side / s)
        sides.append(side)
    return sides


def seed_structure(channels, stage_blocks, scales=SCALES,
                   strides=(1, 2, 2, 2)):
    """The seed network of algorithm 1: ``channels * 2**i`` neurons for every
    scale in every block of stage ``i`` (``N_k = L * C``), the widths
    doubling per stage like ResNet's."""
    check_int('ScaleNet', 'seed', channels, 1,
              allowed='an int >= 1 (channels per scale in the first stage)')
    return [[channels * 2**i] * len(scales) + [side]
            for i, (n, side) in enumerate(zip(stage_blocks,
                                              design_sides(strides)))
            for _ in range(n)]


def structure_file(blocks, stage_blocks, scales=SCALES, **meta):
    """The dict a structure file holds (``meta`` goes in as extra keys)."""
    return dict(_format=_FORMAT, layers=list(stage_blocks),
                scales=list(scales), blocks=[list(b) for b in blocks], **meta)


def load_structure(spec, depth, stage_blocks, scales=SCALES,
                   strides=(1, 2, 2, 2)):
    """Resolve ``spec`` to a checked list of ``[C_1..C_L, side]`` entries.

    ``spec``: ``None`` (the published allocation for ``depth``), a published
    allocation's name (``PUBLISHED``), a JSON file path, ``dict(seed=C)``
    (seed network), a structure dict or a list of entries. ``stage_blocks``
    is the depth's number of blocks per stage; the structure must cover all
    of them. Any problem is one error naming it.
    """
    where = f'ScaleNet(depth={depth}) structure'
    if spec is None:
        if depth not in DEFAULT:
            raise ValueError(
                f'{where}: no published allocation for depth={depth} '
                f'(published: {sorted(DEFAULT)}); give structure= a file, '
                'a list or dict(seed=C).')
        spec = DEFAULT[depth]
    if isinstance(spec, str) and spec in PUBLISHED:
        where = f'{where} {spec!r}'
        spec = PUBLISHED[spec]
    if isinstance(spec, (str, os.PathLike)):
        where = f'{where} file {os.fspath(spec)!r}'
        spec = _read(spec, where)
    if isinstance(spec, dict):
        spec = _from_dict(spec, depth, stage_blocks, scales, strides, where)
    if not isinstance(spec, (list, tuple)):
        raise TypeError(f'{where}: got {type(spec).__name__}; allowed None, '
                        'a JSON file path, a list of [C1..CL, side] entries, '
                        "a dict with 'blocks' or dict(seed=C).")
    need = sum(stage_blocks)
    if len(spec) != need:
        raise ValueError(
            f'{where}: {len(spec)} blocks, depth={depth} needs {need} '
            f'(blocks per stage {tuple(stage_blocks)}).')
    names = [f'layer{i + 1}.{j}' for i, n in enumerate(stage_blocks)
             for j in range(n)]
    blocks = []
    for k, (entry, name) in enumerate(zip(spec, names)):
        entry = list(entry) if isinstance(entry, (list, tuple)) else [entry]
        try:
            if len(entry) != len(scales) + 1:
                raise ValueError(f'need {len(scales) + 1} numbers (one '
                                 f'channel count per scale {tuple(scales)}'
                                 ', then side).')
            check_branches(entry[:-1], scales, entry[-1])
        except ValueError as e:
            raise ValueError(f'{where}: block {k} ({name}) = {entry}: '
                             f'{e}') from None
        blocks.append(entry)
    return blocks


def _read(path, where):
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{where}: not found (nor a published allocation: '
            f'{", ".join(PUBLISHED)}).')
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{where}: not valid JSON ({e}).') from None


def _from_dict(spec, depth, stage_blocks, scales, strides, where):
    if f'scalenet{depth}' in spec:
        spec = spec[f'scalenet{depth}']
    if set(spec) == {'seed'}:
        return seed_structure(spec['seed'], stage_blocks, scales, strides)
    if 'blocks' not in spec:
        raise ValueError(f"{where}: a dict needs 'blocks' (or 'seed', or "
                         f"'scalenet{depth}'); got keys {sorted(spec)}.")
    for key, want in (('layers', stage_blocks), ('scales', scales)):
        if key in spec and list(spec[key]) != list(want):
            raise ValueError(f'{where}: {key}={list(spec[key])} but the '
                             f'model has {key}={list(want)}.')
    return spec['blocks']
