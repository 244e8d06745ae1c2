"""ScaleNet: SA block (eq. 1-4), backbone (table 1), paper sizes, mmdet
ResNet semantics, structures and the neuron allocation (3.2)."""
import copy
import json
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.backbones import ResNet
from mmengine.analysis import FlopAnalyzer
from torch.nn.modules.batchnorm import _BatchNorm

from msdet.models.backbones import SABottleneck, ScaleNet
from msdet.models.backbones.scalenet_allocation import (allocate_neurons,
                                                        block_budget,
                                                        select_neurons)
from msdet.models.backbones.scalenet_structure import PUBLISHED
from msdet.ops.feature_resize import max_pool
from msdet.ops.scale_aggregation import ScaleAggregation

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(REPO, '..', 'shared/data/scalenet_structures.json')
FC = 2048 * 1000 + 1000  # the ImageNet classifier the papers count


def small(**kwargs):
    """ScaleNet-50 seed at 1/4 width: same blocks, fast on CPU."""
    kwargs.setdefault('structure', dict(seed=8))
    return ScaleNet(depth=50, base_channels=16, **kwargs)


def conv_flops(module, *shape):
    fa = FlopAnalyzer(module, (torch.randn(*shape), ))
    fa.unsupported_ops_warnings(False)
    fa.tracer_warnings('none')
    return fa.by_operator().get('conv', 0)


def sa_definition(op, x):
    """Eq. 1-4 spelt out: explicit s x s max windows (rounding down; a map
    smaller than s pools whole), the branch conv, nearest resize back by
    explicit indices, concatenation in scale order."""
    n, _, H, W = x.shape
    outs = []
    for key, conv in op.branches.items():
        s = op.scales[int(key)]
        kh, kw = min(s, H), min(s, W)
        h, w = H // kh, W // kw
        pooled = torch.empty(n, x.shape[1], h, w)
        for i in range(h):
            for j in range(w):
                pooled[:, :, i, j] = x[:, :, i * kh:(i + 1) * kh,
                                       j * kw:(j + 1) * kw].amax((2, 3))
        y = conv(pooled)
        rows = torch.arange(H) * h // H
        cols = torch.arange(W) * w // W
        outs.append(y[:, :, rows][:, :, :, cols])
    return torch.cat(outs, 1)


# ----------------------------------------------------------------- SA block
@pytest.mark.parametrize('size', [(28, 28), (13, 17), (7, 7), (5, 9),
                                  (1, 3)])
def test_sa_op_equals_definition_for_any_size(size):
    torch.manual_seed(0)
    op = ScaleAggregation(6, [3, 2, 0, 4], design_size=14)
    x = torch.randn(2, 6, *size)
    y = op(x)
    assert y.shape == (2, 9, *size)  # exact input size restored
    assert torch.allclose(y, sa_definition(op, x), atol=1e-6)


def release_upsample(y, size):
    """The release's resize back (``F.upsample``): nearest where the size
    is a multiple of the pooled size, else bilinear, half-pixel centres."""
    h, w = size
    if h % y.shape[2] == 0 and w % y.shape[3] == 0:
        return y.repeat_interleave(h // y.shape[2], 2).repeat_interleave(
            w // y.shape[3], 3)
    return F.interpolate(y, size=size, mode='bilinear', align_corners=False)


@pytest.mark.parametrize('size', [(28, 28), (14, 14), (13, 17), (7, 7)])
def test_sa_op_release_resampling(size):
    torch.manual_seed(0)
    op = ScaleAggregation(6, [3, 2, 2, 4], design_size=14,
                          resample='release')
    x = torch.randn(2, 6, *size)
    want = [op.branches['0'](x)]
    for key, s in (('1', 2), ('2', 4), ('3', 7)):
        want.append(release_upsample(op.branches[key](F.max_pool2d(x, s)),
                                     size))
    torch.testing.assert_close(op(x), torch.cat(want, 1))
    # nearest (paper) and release agree where every pooled side divides
    op.resample = 'nearest'
    divides = all(n % (n // s) == 0 for n in size for s in (2, 4, 7))
    assert torch.allclose(op(x), torch.cat(want, 1)) == divides


def test_sa_op_layout_follows_structure_not_input():
    op = ScaleAggregation(8, [4, 0, 2, 3], design_size=7)
    assert set(op.branches) == {'0', '2', '3'}  # C = 0: no layers at all
    assert [op.branches[k].kernel_size for k in ('0', '2', '3')] == \
        [(3, 3), (3, 3), (1, 1)]  # 7x7 pool covers the 7x7 design map
    shapes = {k: v.shape for k, v in op.state_dict().items()}
    for size in (7, 25, 40):
        assert op(torch.randn(1, 8, size, size)).shape[1] == 9
        assert {k: v.shape for k, v in op.state_dict().items()} == shapes
    assert all(c.kernel_size == (3, 3) for c in ScaleAggregation(
        8, [1, 1, 1, 1], design_size=56).branches.values())


def test_sa_op_cost_model_equals_measured_flops():
    op = ScaleAggregation(8, [4, 5, 2, 3], design_size=14)
    # floor(14 / s) = 14, 7, 3, 2 pooled sides, all 3x3
    assert op.neuron_flops() == [9 * 8 * 196, 9 * 8 * 49, 9 * 8 * 9,
                                 9 * 8 * 4]
    for side, sa in ((14, op), (7, ScaleAggregation(8, [4, 5, 2, 3], 7))):
        modelled = sum(c * o for c, o in zip(sa.branch_channels,
                                             sa.neuron_flops()))
        assert modelled == conv_flops(sa, 1, 8, side, side)


# ------------------------------------------------------------------ blocks
def test_stage_stride_is_a_max_pool_before_the_block():
    m = small()
    m.eval()
    strided = {n for n, mod in m.named_modules()
               if isinstance(mod, torch.nn.Conv2d) and mod.stride != (1, 1)}
    assert strided == {'conv1'}  # only the stem; every block conv stride 1
    assert m.layer1[0].pool is None and m.layer2[1].pool is None
    for i in (2, 3, 4):
        assert getattr(m, f'layer{i}')[0].pool.kernel_size == 2
    blk = m.layer2[0]
    x = torch.randn(1, 64, 15, 11)
    xp = F.max_pool2d(x, 2, 2, ceil_mode=True)
    out = blk.relu(blk.norm1(blk.conv1(xp)))
    out = blk.relu(blk.norm2(blk.conv2(out)))
    out = blk.norm3(blk.conv3(out)) + blk.downsample(xp)
    with torch.no_grad():
        assert torch.allclose(blk(x), torch.relu(out), atol=1e-5)
    assert blk(x).shape == (1, 128, 8, 6)


def test_release_resampling_pools_strided_blocks_rounding_down():
    m = small(resample='release')
    assert m.layer2[0].pool.ceil_mode is False
    assert m.layer2[0].conv2.resample == 'release'
    m.eval()
    assert m(torch.randn(1, 3, 67, 99))[-1].shape[-2:] == (2, 3)
    assert small()(torch.randn(1, 3, 67, 99))[-1].shape[-2:] == (3, 4)


def test_block_widths_follow_structure():
    entry = PUBLISHED['scalenet50'][4]  # layer2.1: [90, 39, 9, 37, side 28]
    m = ScaleNet(depth=50)
    blk = m.layer2[1]
    assert isinstance(blk, SABottleneck)
    assert blk.conv2.branch_channels == tuple(entry[:-1])
    assert blk.norm2.num_features == blk.conv3.in_channels == sum(entry[:-1])
    assert blk.conv1.out_channels == blk.conv2.in_channels == 128
    assert blk.conv3.out_channels == 512
    # 1x1 where the pool covers the 7x7 design map: only s = 7 in layer4
    k1 = {n for n, mod in m.named_modules()
          if isinstance(mod, torch.nn.Conv2d) and '.conv2.' in n
          and mod.kernel_size == (1, 1)}
    assert k1 == set()  # layer4 of ScaleNet-50 has no s = 7 neuron
    m101 = ScaleNet(depth=101)
    assert m101.layer4[2].conv2.branches['3'].kernel_size == (1, 1)
    assert m101.layer3[2].conv2.branches['3'].kernel_size == (3, 3)


# ------------------------------------------------------------ paper sizes
def test_scalenet50_size_matches_paper():
    m = ScaleNet(depth=50)
    m.eval()
    params = sum(p.numel() for p in m.parameters()) + FC
    assert abs(params / 31.483e6 - 1) < 0.001  # "31.483M" (PSConv table 2)
    flops = conv_flops(m, 1, 3, 224, 224) + 2048 * 1000
    assert abs(flops / 3.818e9 - 1) < 0.01  # "3.818 GFLOPs"


def conv_macs(model, size=224):
    """Multiply-adds of every conv in one forward (forward hooks; the same
    count as ``conv_flops``, without tracing the model)."""
    total = []
    hooks = [m.register_forward_hook(lambda mod, i, out: total.append(
        out[0].numel() * mod.in_channels // mod.groups *
        mod.kernel_size[0] * mod.kernel_size[1]))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, size, size))
    for h in hooks:
        h.remove()
    return sum(total)


def test_scalenet152_and_50_light_sizes_match_paper():
    m = ScaleNet(depth=152)
    assert m.structure == PUBLISHED['scalenet152']
    flops = conv_macs(m) + 2048 * 1000
    assert abs(flops / 11.2e9 - 1) < 0.01  # ScaleNet table 3: "11.2"
    light = ScaleNet(depth=50, structure='scalenet50_light')
    assert light.structure == PUBLISHED['scalenet50_light']
    r50 = conv_macs(ResNet(depth=50)) + 2048 * 1000
    saved = r50 - conv_macs(light) - 2048 * 1000
    assert abs(saved / 1e9 - 1.2) < 0.05  # table 2: 1.2 GFLOPs fewer
    assert 0.28 < saved / r50 < 0.31  # 3.4: "reduces FLOPs ... by 29%"


def test_scalenet101_flops_match_paper():
    m = ScaleNet(depth=101)
    m.eval()
    flops = conv_flops(m, 1, 3, 224, 224) + 2048 * 1000
    assert abs(flops / 7.5e9 - 1) < 0.01  # ScaleNet table 3: "7.5"


@pytest.mark.skipif(not osp.isfile(SHARED), reason='no shared data')
def test_published_structures_equal_the_release_file():
    data = json.load(open(SHARED))
    for depth in (50, 101):
        assert PUBLISHED[f'scalenet{depth}'] == \
            data[f'scalenet{depth}']['blocks']
        assert ScaleNet.arch_settings[depth][1] == \
            tuple(data[f'scalenet{depth}']['layers'])


# ------------------------------------------------- mmdet ResNet semantics
@pytest.mark.parametrize('out_indices', [(0, ), (0, 1, 2, 3), (1, 3)])
def test_output_shapes_equal_resnet_for_odd_sizes(out_indices):
    m = small(out_indices=out_indices)
    ref = ResNet(depth=50, base_channels=16, out_indices=out_indices)
    m.eval()
    ref.eval()
    x = torch.randn(1, 3, 67, 99)
    outs, refs = m(x), ref(x)
    assert [o.shape for o in outs] == [r.shape for r in refs]
    assert [o.shape[1] for o in outs] == [64 * 2**i for i in out_indices]


def test_strides_and_dilations_for_output_stride_16():
    m = small(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2))
    m.eval()
    assert m(torch.randn(1, 3, 128, 128))[-1].shape[-2:] == (8, 8)
    assert m.layer4[0].pool is None and m.layer3[0].pool is not None
    for conv in m.layer4[0].conv2.branches.values():
        assert conv.dilation == (2, 2) and conv.padding == (2, 2)
    # the seed's design sides follow the strides: layer4 stays at 14
    assert [b[-1] for b in m.structure[-4:]] == [14, 14, 14, 14]


def test_frozen_stages_and_norm_eval():
    m = small(frozen_stages=2, norm_eval=False)
    m.train()
    for name, p in m.named_parameters():
        frozen = name.startswith(('conv1', 'bn1', 'layer1', 'layer2'))
        assert p.requires_grad is not frozen, name
    frozen_bn, live_bn = m.layer2[0].bn2, m.layer3[0].bn2
    before = [frozen_bn.running_mean.clone(), live_bn.running_mean.clone()]
    m(torch.randn(2, 3, 64, 64))
    assert torch.equal(frozen_bn.running_mean, before[0])
    assert not torch.equal(live_bn.running_mean, before[1])

    m = small(norm_eval=True)
    m.train()
    bns = [mod for mod in m.modules() if isinstance(mod, _BatchNorm)]
    assert bns and all(not bn.training for bn in bns)
    assert all(bn.weight.requires_grad for bn in bns)


def test_zero_init_residual_and_deepcopy():
    m = small()
    m.init_weights()
    for layer in (m.layer1, m.layer4):
        for block in layer:
            assert torch.count_nonzero(block.norm3.weight) == 0
            assert torch.count_nonzero(block.norm2.weight) > 0
    copy.deepcopy(m)  # no build-time iterator left on the module


def test_plugins_after_conv2_get_the_sa_width():
    m = small(plugins=[dict(cfg=dict(type='ContextBlock', ratio=0.25),
                            position='after_conv2',
                            stages=(True, False, False, False))])
    m.eval()
    blk = m.layer1[0]
    plugin = getattr(blk, blk.after_conv2_plugin_names[0])
    assert plugin.in_channels == blk.norm2.num_features == 32
    assert m(torch.randn(1, 3, 64, 64))[0].shape == (1, 64, 16, 16)


def test_built_from_mmdet_and_mmseg_registries():
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS as SEG_MODELS
    cfg = dict(type='ScaleNet', depth=50, base_channels=16,
               structure=dict(seed=4), strides=(1, 2, 1, 1),
               dilations=(1, 1, 2, 4), out_indices=(3, ))
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert isinstance(DET_MODELS.build(cfg), ScaleNet)
    with DefaultScope.overwrite_default_scope('mmseg'):
        m = SEG_MODELS.build(cfg)
    m.eval()
    assert m(torch.randn(1, 3, 64, 64))[0].shape == (1, 512, 8, 8)


# -------------------------------------------------------------- structures
def test_structure_forms_agree(tmp_path):
    blocks = PUBLISHED['scalenet50']
    as_list = tmp_path / 'list.json'
    as_list.write_text(json.dumps(blocks))
    as_dict = tmp_path / 'dict.json'
    as_dict.write_text(json.dumps(dict(layers=[3, 4, 6, 3],
                                       scales=[1, 2, 4, 7], blocks=blocks)))
    named = tmp_path / 'named.json'
    named.write_text(json.dumps(dict(scalenet50=dict(blocks=blocks))))
    ref = ScaleNet(depth=50, base_channels=16)
    shapes = {k: v.shape for k, v in ref.state_dict().items()}
    for spec in (blocks, str(as_list), as_dict, str(named),
                 dict(blocks=blocks)):
        m = ScaleNet(depth=50, base_channels=16, structure=spec)
        assert m.structure == blocks
        assert {k: v.shape for k, v in m.state_dict().items()} == shapes


def test_seed_structure():
    m = small(structure=dict(seed=8))
    assert m.structure[0] == [8, 8, 8, 8, 56]
    assert m.structure[3] == [16, 16, 16, 16, 28]
    assert m.structure[-1] == [64, 64, 64, 64, 7]


def _bad(k, value):
    blocks = copy.deepcopy(PUBLISHED['scalenet50'])
    blocks[k] = value
    return blocks


@pytest.mark.parametrize('kwargs,exc,match', [
    (dict(depth=34), ValueError, 'depth=34'),
    (dict(structure='scalenet101'), ValueError,
     r"'scalenet101': 33 blocks, depth=50 needs 16"),
    (dict(resample='bilinear'), ValueError,
     r"resample='bilinear'; allowed: \['nearest', 'release'\]"),
    (dict(structure=PUBLISHED['scalenet50'][:-1]), ValueError,
     '15 blocks.*needs 16'),
    (dict(structure=_bad(5, [106, -4, 4, 9, 28])), ValueError,
     r'block 5 \(layer2.2\).*-4'),
    (dict(structure=_bad(7, [0, 0, 0, 0, 14])), ValueError,
     r'block 7 \(layer3.0\).*all scales are 0'),
    (dict(structure=_bad(2, [59, 26, 0, 56])), ValueError,
     'need 5 numbers'),
    (dict(structure=_bad(2, [59, 26, 0, 3, 0])), ValueError, 'side'),
    (dict(structure='no/such/structure.json'), FileNotFoundError,
     'no/such/structure.json'),
    (dict(structure=dict(blocks=PUBLISHED['scalenet50'],
                         layers=[3, 4, 23, 3])),
     ValueError, r'layers=\[3, 4, 23, 3\]'),
    (dict(structure=dict(seed=0)), ValueError, 'seed=0'),
    (dict(structure=dict(chans=3)), ValueError, "needs 'blocks'"),
    (dict(structure=3.5), TypeError, 'float'),
    (dict(scales=(1, 2, 0, 7)), ValueError, r'scales=\[1, 2, 0, 7\]'),
    (dict(strides=(1, 2, 2)), ValueError, 'strides'),
    (dict(dcn=dict(type='DCNv2'), stage_with_dcn=(True, ) * 4), ValueError,
     'dcn'),
    (dict(avg_down=True), ValueError, 'avg_down'),
    (dict(init_cfg=dict(type='Pretrained', checkpoint='nope/sn50.pth')),
     FileNotFoundError, 'nope/sn50.pth'),
])
def test_bad_arguments_rejected_at_build(kwargs, exc, match):
    args = dict(depth=50, base_channels=16)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        ScaleNet(**args)


def test_bad_structure_file_is_one_clear_error(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('[[1, 2,')
    with pytest.raises(ValueError, match='bad.json.*not valid JSON'):
        ScaleNet(depth=50, structure=str(bad))


# -------------------------------------------------------------- allocation
def test_select_neurons_hand_example():
    gammas = [torch.tensor([0.9, -0.1, 0.5]), torch.tensor([0.8, 0.2]),
              torch.tensor([])]
    costs = [10, 3, 1]
    # by |gamma|: s1[0] (10), s2[0] (3), s1[2] (10: 13 + 10 > 20, skipped),
    # s2[1] (3), s1[1] (10, skipped)
    assert select_neurons(gammas, costs, 20) == [[0], [0, 1], []]
    assert select_neurons(gammas, costs, 23) == [[0, 2], [0], []]
    # b = 1 scores |gamma| / cost: the cheap scale first
    assert select_neurons(gammas, costs, 10, balance=1) == [[], [0, 1], []]


@pytest.mark.parametrize('seed', range(3))
def test_select_neurons_follows_gamma_within_budget(seed):
    g = torch.Generator().manual_seed(seed)
    gammas = [torch.randn(n, generator=g) for n in (16, 16, 16, 16)]
    costs = [400, 100, 25, 9]
    budget = 3000
    kept = select_neurons(gammas, costs, budget)
    used = sum(len(k) * c for k, c in zip(kept, costs))
    assert used <= budget
    for k, gam, c in zip(kept, gammas, costs):
        # equal costs: a scale keeps exactly its largest |gamma|
        top = torch.argsort(gam.abs(), descending=True)[:len(k)]
        assert sorted(top.tolist()) == k
        # greedy is maximal: nothing dropped still fits in the leftover
        if len(k) < len(gam):
            assert c > budget - used


def test_allocate_neurons_builds_within_budget():
    torch.manual_seed(0)
    seed = small(structure=dict(seed=8))
    for m in seed.modules():
        if isinstance(m, SABottleneck):
            m.norm2.weight.data = torch.rand(m.norm2.num_features)
    structure = allocate_neurons(seed, budget=0.5)
    assert structure['layers'] == [3, 4, 6, 3]
    new = ScaleNet(depth=50, base_channels=16, structure=structure)
    alloc = structure['allocation']
    blocks = [b for layer in new.res_layers for b in getattr(new, layer)]
    for k, blk in enumerate(blocks):
        side = blk.conv2.design_size
        measured = conv_flops(blk.conv2, 1, blk.conv2.in_channels, side,
                              side)
        assert measured == alloc['block_flops'][k]
        assert measured <= block_budget(blk, 0.5) == \
            alloc['block_budgets'][k]
    # layer1.0 keeps, per scale, exactly the neurons with the largest gamma
    gamma = seed.layer1[0].norm2.weight.detach()
    kept = select_neurons(list(gamma.split(8)),
                          seed.layer1[0].conv2.neuron_flops(),
                          block_budget(seed.layer1[0], 0.5))
    assert structure['blocks'][0][:-1] == [len(k) for k in kept]


def test_allocate_neurons_errors():
    with pytest.raises(ValueError, match='keeps no neuron'):
        allocate_neurons(small(), budget=1e-6)
    with pytest.raises(ValueError, match='3 stages'):
        allocate_neurons(small(num_stages=3, out_indices=(0, 1, 2),
                               strides=(1, 2, 2), dilations=(1, 1, 1)))
    with pytest.raises(TypeError, match='ResNet'):
        allocate_neurons(ResNet(depth=50, base_channels=16))


# ----------------------------------------------------------------- configs
def test_scalenet_configs_follow_the_papers():
    import glob
    import re

    from mmengine.config import Config
    configs = sorted(
        glob.glob(osp.join(REPO, 'configs/scalenet/*_fpn_1x*.py')))
    names = {osp.basename(p) for p in configs}
    for det in ('faster_rcnn', 'mask_rcnn', 'cascade_rcnn'):
        for depth in (50, 101):
            assert f'{det}_scalenet{depth}_fpn_1x.py' in names
    for path in configs:
        cfg = Config.fromfile(path)
        name, bb = osp.basename(path), cfg.model.backbone
        assert 'msdet' in cfg.custom_imports.imports
        assert (bb.type, bb.depth) == \
            ('ScaleNet', int(re.search(r'scalenet(\d+)', name).group(1)))
        assert cfg.train_cfg.max_epochs == 12
        assert cfg.optim_wrapper.optimizer.lr == 0.02
        scales = [[t.scale for t in dl.dataset.pipeline if t.type == 'Resize']
                  [0] for dl in (cfg.train_dataloader, cfg.test_dataloader)]
        header = open(path).read().split('_base_')[0]
        assert f"resample='{bb.resample}'" in header  # says which it uses
        if 'seed' in name:
            assert bb.structure == dict(seed=64) and bb.init_cfg is None
            assert not bb.norm_eval and bb.frozen_stages == -1
            assert bb.resample == 'nearest'  # from scratch: the paper's
        else:
            assert 'structure' not in bb  # the published allocation
            assert bb.init_cfg.checkpoint == \
                f'checkpoints/scalenet{bb.depth}_imagenet.pth'
            assert bb.resample == 'release'  # the release's weights
        if name.startswith('faster'):  # paper 4.4: 800/1200 (600/1000)
            test = (1000, 600) if 'test600' in name else (1200, 800)
            assert scales == [(1200, 800), test]
        else:
            assert scales == [(1333, 800), (1333, 800)]


@pytest.mark.parametrize('size,kernel', [
    ((8, 8), 2), ((9, 7), 2), ((5, 13), 2), ((8, 8), 4), ((9, 7), 4),
    ((4, 6), 4), ((14, 15), 7), ((1, 1), 1), ((4, 1), (2, 1))])
def test_fast_max_pool_equals_aten(size, kernel):
    """SA blocks' max pool: inference by strided maxima, the
    same values as aten's op; with autograd (training) aten's op itself."""
    x = torch.relu(torch.randn(2, 3, *size))  # ties at 0, as after a ReLU
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    with torch.no_grad():
        assert torch.equal(max_pool(x, kernel), F.max_pool2d(x, k))
    x.requires_grad_()
    got, = torch.autograd.grad(max_pool(x, kernel).sum(), x)
    want, = torch.autograd.grad(F.max_pool2d(x, k).sum(), x)
    assert torch.equal(got, want)


def test_compiles_once_for_every_block_and_size():
    """torch.compile (dynamo, dynamic sizes): one graph serves every SA
    block and input size (no branch on sizes in the traced path); the same
    outputs and gradients as eager, in train mode."""
    import torch._dynamo.testing
    torch._dynamo.reset()
    counter = torch._dynamo.testing.CompileCounter()
    torch.manual_seed(0)
    m = ScaleNet(depth=50, base_channels=8, stem_channels=8,
                 structure=dict(seed=2), norm_eval=False)
    m.train()
    compiled = torch.compile(m, backend=counter, dynamic=True)
    params = list(m.parameters())
    for size in [(224, 256), (256, 320)]:
        x = torch.randn(2, 3, *size)
        ref, out = m(x), compiled(x)
        for a, b in zip(out, ref):
            assert torch.allclose(a, b, atol=1e-5)
        want = torch.autograd.grad(sum(o.sum() for o in ref), params)
        got = torch.autograd.grad(sum(o.sum() for o in out), params)
        for a, b in zip(got, want):
            assert (a - b).abs().max() <= 1e-4 * (1 + b.abs().max())
    assert counter.frame_count == 1
    torch._dynamo.reset()
