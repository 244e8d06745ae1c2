"""Elastic-ResNeXt: paper sizes, the Elastic block's definition, mmdet ResNet
semantics, multi-grid, bad arguments."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.backbones import ResNeXt
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

from msdet.models.backbones import ElasticBottleneck, ElasticResNeXt
from msdet.ops.feature_resize import avg_pool2x, upsample2x

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
FC_PARAMS = 2048 * 1000 + 1000  # the ImageNet classifier the paper counts
FC_FLOPS = 2048 * 1000


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def small(**kwargs):
    """Elastic-ResNeXt-50 at 1/4 width (8 groups x 4): same layout, fast."""
    kwargs.setdefault('depth', 50)
    return ElasticResNeXt(groups=8, base_channels=16, **kwargs)


def randomize(module, seed=0):
    """Random weights and BN statistics, so eval-mode BN is not identity."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.2
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5
    return module


def gflops(model):
    """Conv + fc multiply-adds and bilinear upsampling (4 per output value)
    at 224x224; BN is not counted (it folds into the convs at inference).

    Counted at 32x32, where every feature map (stem 16, stages 8/4/2/1, low
    branches 4/2/1) is exactly 1/7 of its size at 224, so x 49 is exact.
    """
    model.eval()
    analyzer = FlopAnalyzer(model, (torch.randn(1, 3, 32, 32), ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    by_op = analyzer.by_operator()
    return (49 * (sum(by_op.values()) - by_op.get('batch_norm', 0)) +
            FC_FLOPS) / 1e9


@pytest.mark.parametrize('kwargs,params_m,gflops_paper,num_elastic', [
    (dict(depth=50), 25.2, 4.2, 17),                      # tables 2, 8, 10
    (dict(depth=50, elastic=False), 25.0, 4.2, 0),         # tables 2, 10
    (dict(depth=50, stage_blocks=(3, 4, 6, 3)), 25.0, 3.4, 11),  # sElastic
    (dict(depth=101), 44.3, 7.9, 44),                      # table 2
    (dict(depth=101, elastic=False), 44.2, 8.0, 0),        # table 2
], ids=['ex50', 'x50', 'sx50', 'ex101', 'x101'])
def test_size_at_224_matches_paper(kwargs, params_m, gflops_paper,
                                   num_elastic):
    m = ElasticResNeXt(**kwargs)
    assert abs((n_params(m) + FC_PARAMS) / 1e6 / params_m - 1) < 0.01
    assert abs(gflops(m) / gflops_paper - 1) < 0.01
    blocks = [b for b in m.modules() if isinstance(b, ElasticBottleneck)]
    assert sum(b.elastic for b in blocks) == num_elastic  # fig. 6: 17


def test_layouts_of_appendix_b():
    assert ElasticResNeXt(depth=50).stage_blocks == (6, 8, 5, 3)
    assert small(depth=101).stage_blocks == (12, 14, 20, 3)
    assert small(elastic=False).stage_blocks == (3, 4, 6, 3)
    assert small(depth=101, elastic=False).stage_blocks == (3, 4, 23, 3)


def test_elastic_blocks_are_stride1_blocks_outside_last_stage():
    m = small()
    for i, layer in enumerate((m.layer1, m.layer2, m.layer3, m.layer4)):
        for j, block in enumerate(layer):
            assert block.elastic == (i < 3 and (j > 0 or i == 0)), (i, j)
            if not block.elastic:
                assert not hasattr(block, 'conv1_low')
    assert m.layer2[0].conv2.stride == (2, 2)


def reference_block(block, x):
    """Fig. 3 left / eq. 3 written out: replicate-pad to even size, 2x2
    average pool, branch, bilinear 2x up, crop, add, norm3, residual."""
    def branch(x, suffix):
        get = lambda name: getattr(block, name + suffix)  # noqa: E731
        bn1 = getattr(block, block.norm1_name if not suffix else
                      block.norm1_low_name)
        bn2 = getattr(block, block.norm2_name if not suffix else
                      block.norm2_low_name)
        c1, c2, c3 = get('conv1'), get('conv2'), get('conv3')
        y = F.relu(bn1(F.conv2d(x, c1.weight)))
        y = F.relu(bn2(F.conv2d(y, c2.weight, padding=c2.padding,
                                dilation=c2.dilation, groups=c2.groups)))
        return F.conv2d(y, c3.weight)

    h, w = x.shape[-2:]
    low = F.avg_pool2d(F.pad(x, (0, w % 2, 0, h % 2), mode='replicate'), 2)
    low = F.interpolate(branch(low, '_low'), size=(2 * low.shape[2],
                                                   2 * low.shape[3]),
                        mode='bilinear', align_corners=False)[..., :h, :w]
    out = block.norm3(branch(x, '') + low)
    identity = x if block.downsample is None else block.downsample(x)
    return F.relu(out + identity)


@pytest.mark.parametrize('size', [(16, 12), (15, 13), (7, 7), (1, 3)])
def test_elastic_block_equals_its_definition(size):
    block = randomize(ElasticBottleneck(64, 16, groups=8, elastic=True))
    block.eval()
    x = torch.randn(2, 64, *size)
    out = block(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, reference_block(block, x))


def test_low_branch_sees_only_the_downsampled_input():
    """Zeroing the low branch's last conv leaves the high branch alone; a
    change that averages out in every 2x2 cell does not reach the low
    branch."""
    block = randomize(ElasticBottleneck(64, 16, groups=8, elastic=True))
    block.eval()
    x = torch.randn(1, 64, 8, 8)
    checker = torch.ones(8, 8)
    checker[::2, ::2] = checker[1::2, 1::2] = -1
    x2 = x + checker  # same 2x2 averages
    low = {}
    block.norm2_low.register_forward_hook(
        lambda m, i, o: low.setdefault(len(low), o.clone()))
    block(x)
    block(x2)
    torch.testing.assert_close(low[0], low[1])
    with torch.no_grad():
        block.conv3_low.weight.zero_()
    high_only = F.relu(block.norm3(block.conv3(F.relu(block.norm2(
        block.conv2(F.relu(block.norm1(block.conv1(x)))))))) + x)
    torch.testing.assert_close(block(x), high_only)


@pytest.mark.parametrize('ratio,high', [(0.5, 16), (0.75, 24), (0.25, 8)])
def test_branch_ratio_splits_paths_and_keeps_parameters(ratio, high):
    """Table 7 ratios; table 1: Elastic keeps the block's parameters."""
    plain = ElasticBottleneck(256, 64, groups=32, base_width=4)
    block = ElasticBottleneck(256, 64, groups=32, base_width=4,
                              elastic=True, high_ratio=ratio)
    assert (block.conv2.groups, block.conv2_low.groups) == (high, 32 - high)
    assert block.conv2.in_channels == 4 * high
    assert block.conv2_low.in_channels == 4 * (32 - high)
    assert n_params(block) == n_params(plain)


def test_plain_layout_is_mmdet_resnext():
    ours = small(elastic=False)
    ref = ResNeXt(depth=50, groups=8, base_width=4, base_channels=16)
    randomize(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    ref.eval()
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(ours(x), ref(x)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('size', [(64, 64), (67, 61)])
def test_output_shapes_and_odd_inputs(size):
    m = small()
    m.eval()
    outs = m(torch.randn(1, 3, *size))
    for i, y in enumerate(outs):
        h, w = size
        for _ in range(i + 2):  # stem conv, max pool, stride-2 stages
            h, w = -(-h // 2), -(-w // 2)
        assert y.shape == (1, 64 * 2**i, h, w)


def test_output_stride_16_with_multi_grid():
    m = small(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2),
              multi_grid=(1, 2, 4), out_indices=(3, ))
    m.eval()
    assert m(torch.randn(1, 3, 64, 96))[0].shape[-2:] == (4, 6)  # OS16
    assert [b.conv2.dilation for b in m.layer4] == [(2, 2), (4, 4), (8, 8)]
    assert all(b.conv2.padding == b.conv2.dilation for b in m.layer4)
    # which blocks are Elastic does not depend on strides: same checkpoint
    assert m.state_dict().keys() == small().state_dict().keys()


def test_dilated_elastic_stage_dilates_both_branches():
    m = small(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4))
    block = m.layer3[1]
    assert block.elastic and block.conv2.dilation == (2, 2)
    assert block.conv2_low.dilation == (2, 2)
    m.eval()
    assert m(torch.randn(1, 3, 64, 64))[3].shape[-2:] == (8, 8)  # OS8


def test_frozen_stages_and_norm_eval():
    m = small(frozen_stages=2, norm_eval=True)
    m.train()
    for name, p in m.named_parameters():
        frozen = name.startswith(('conv1', 'bn1', 'layer1', 'layer2'))
        assert p.requires_grad is not frozen, name
    bns = [mod for mod in m.modules() if isinstance(mod, _BatchNorm)]
    assert all(not bn.training for bn in bns)
    stats = [bn.running_mean.clone() for bn in bns]
    m(torch.randn(2, 3, 32, 32))
    assert all(torch.equal(a, bn.running_mean) for a, bn in zip(stats, bns))


def test_zero_init_residual_makes_blocks_identity():
    m = small()
    m.init_weights()
    block = m.layer1[2]
    assert block.elastic and torch.count_nonzero(block.norm3.weight) == 0
    block.eval()
    x = torch.randn(1, 64, 8, 8)
    torch.testing.assert_close(block(x), F.relu(x))


def test_with_cp_same_output_and_gradients():
    torch.manual_seed(0)
    a = small(with_cp=False, norm_eval=False)
    b = small(with_cp=True, norm_eval=False)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    ya, yb = a(x)[-1], b(x)[-1]
    torch.testing.assert_close(ya, yb)
    ya.sum().backward()
    yb.sum().backward()
    for name in ('layer1.1.conv1_low.weight', 'layer4.0.conv2.weight'):
        ga = a.get_parameter(name).grad
        torch.testing.assert_close(ga, b.get_parameter(name).grad)
        assert ga.abs().sum() > 0


@pytest.mark.parametrize('kwargs,exc,match', [
    (dict(depth=34), ValueError, 'depth=34'),
    (dict(high_ratio=0.3), ValueError, 'high_ratio=0.3'),
    (dict(high_ratio=1.0), ValueError, 'high_ratio=1.0'),
    (dict(groups=1, base_channels=16), ValueError, 'groups=1'),
    (dict(elastic='simple'), ValueError, "elastic='simple'"),
    (dict(stage_blocks=(3, 4, 6)), ValueError, r'stage_blocks=\(3, 4, 6\)'),
    (dict(multi_grid=(1, 2)), ValueError, r'multi_grid=\(1, 2\)'),
    (dict(strides=(2, 2, 2, 2)), ValueError, r'strides\[0\]=2'),
    (dict(strides=(1, 2, 2)), ValueError, r'strides=\(1, 2, 2\)'),
    (dict(dilations=(1, 1, 1, 0)), ValueError, r'dilations=\(1, 1, 1, 0\)'),
    (dict(out_indices=(4, )), ValueError, r'out_indices=\(4,\)'),
    (dict(dcn=dict(type='DCN'), stage_with_dcn=(True, ) * 4), ValueError,
     'dcn'),
    (dict(init_cfg=dict(type='Pretrained', checkpoint='nope/ex50.pth')),
     FileNotFoundError, 'nope/ex50.pth'),
])
def test_bad_arguments_rejected_at_build(kwargs, exc, match):
    args = dict(depth=50, groups=8, base_channels=16)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        ElasticResNeXt(**args)


def test_built_from_mmdet_and_mmseg_registries():
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS as SEG_MODELS
    cfg = dict(type='ElasticResNeXt', depth=50, groups=8, base_channels=16)
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert isinstance(DET_MODELS.build(cfg), ElasticResNeXt)
    with DefaultScope.overwrite_default_scope('mmseg'):
        assert isinstance(SEG_MODELS.build(cfg), ElasticResNeXt)


DETECTORS = {'faster_rcnn': 'FasterRCNN', 'mask_rcnn': 'MaskRCNN',
             'cascade_rcnn': 'CascadeRCNN', 'cascade_mask_rcnn': 'CascadeRCNN'}


@pytest.mark.parametrize('det', DETECTORS)
@pytest.mark.parametrize('depth', [50, 101])
def test_detector_configs(det, depth):
    cfg = Config.fromfile(
        osp.join(REPO, f'configs/elastic/{det}_ex{depth}_32x4d_fpn_1x.py'))
    assert cfg.model.type == DETECTORS[det]
    assert ('mask_head' in cfg.model.roi_head) == ('mask' in det)
    bb = cfg.model.backbone
    assert (bb.type, bb.depth, bb.groups, bb.base_width) == \
        ('ElasticResNeXt', depth, 32, 4)
    assert bb.get('elastic', True) and bb.init_cfg.type == 'Pretrained'
    assert bb.init_cfg.checkpoint == \
        f'checkpoints/elastic_resnext{depth}_32x4d_imagenet.pth'
    assert cfg.train_cfg.max_epochs == 12


@pytest.mark.parametrize('size', [(8, 6), (7, 5), (1, 1), (1, 3), (9, 10)])
def test_fast_pool_and_upsample_equal_aten_with_gradients(size):
    """The CPU paths of the Elastic block's 2x average pool (ceil mode) and
    2x bilinear upsample compute aten's functions and gradients; a trace
    (FLOP counting) records aten's ops."""
    x = torch.randn(2, 3, *size, dtype=torch.double, requires_grad=True)
    pairs = [(avg_pool2x, lambda t: F.avg_pool2d(t, 2, ceil_mode=True),
              'aten::avg_pool2d'),
             (upsample2x, lambda t: F.interpolate(
                 t, scale_factor=2, mode='bilinear', align_corners=False),
              'aten::upsample_bilinear2d')]
    for fast, ref, op in pairs:
        torch.testing.assert_close(fast(x), ref(x), rtol=1e-12, atol=1e-12)
        assert torch.autograd.gradcheck(fast, (x, ), fast_mode=True)
        assert op in str(torch.jit.trace(fast, (x.detach(), )).graph)
