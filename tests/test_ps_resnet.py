"""PS-ResNet / PS-ResNeXt: paper sizes, mmdet ResNet semantics, registries."""
import pytest
import torch
from mmdet.models.backbones import ResNet, ResNeXt
from mmengine.analysis import FlopAnalyzer
from torch.nn.modules.batchnorm import _BatchNorm

from msdet.models.backbones import PSResNet, PSResNeXt
from msdet.ops import PSConv2d


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def small(**kwargs):
    """PS-ResNet-50 at 1/4 width: same blocks, fast on CPU."""
    return PSResNet(depth=50, base_channels=16, **kwargs)


def test_ps_resnet50_size_matches_paper_table2():
    ps, ref = PSResNet(depth=50), ResNet(depth=50)
    fc = 2048 * 1000 + 1000  # the ImageNet classifier the paper counts
    assert n_params(ps) == n_params(ref)
    assert n_params(ps) + fc == 25_557_032  # "25.557M"
    x = torch.randn(1, 3, 224, 224)
    ps.eval()
    ref.eval()
    flops = FlopAnalyzer(ps, (x, )).total()
    assert flops == FlopAnalyzer(ref, (x, )).total()
    assert abs((flops + 2048 * 1000) / 4.089e9 - 1) < 0.01  # "4.089"


def test_parameter_names_and_shapes_are_mmdet_resnets():
    """The per-block stage building keeps mmdet's ``layerN.j.*`` names."""
    ps, ref = small(), ResNet(depth=50, base_channels=16)
    assert [(k, v.shape) for k, v in ps.state_dict().items()] == \
        [(k, v.shape) for k, v in ref.state_dict().items()]
    px = PSResNeXt(depth=50, groups=4, base_channels=16)
    rx = ResNeXt(depth=50, groups=4, base_channels=16)
    assert [(k, v.shape) for k, v in px.state_dict().items()] == \
        [(k, v.shape) for k, v in rx.state_dict().items()]


def test_every_bottleneck_3x3_is_psconv_and_nothing_else():
    ps = small()
    ps_convs = {n for n, m in ps.named_modules() if isinstance(m, PSConv2d)}
    conv2s = {f'layer{i + 1}.{j}.conv2'
              for i, nb in enumerate(ps.stage_blocks) for j in range(nb)}
    assert ps_convs == conv2s
    assert ps.layer2[0].conv2.stride == (2, 2)  # pytorch style
    assert ps.layer1[0].conv2.pattern == (1, 2, 1, 4)


def test_ps_resnext101_32x4d_is_grouped_psconv():
    px = PSResNeXt(depth=101, groups=32, base_width=4)
    ref = ResNeXt(depth=101, groups=32, base_width=4)
    assert n_params(px) == n_params(ref)
    conv = px.layer3[5].conv2
    assert isinstance(conv, PSConv2d) and conv.groups == 32
    assert conv.in_channels == 32 * 4 * 4  # stage 3 of 32x4d: 512 wide
    D = conv.dilation_matrix
    assert torch.equal(D[:16], D[16:32])  # pattern repeated in each group


@pytest.mark.parametrize('out_indices', [(0, ), (1, ), (2, ), (3, ),
                                         (0, 1, 2, 3), (1, 3)])
def test_output_shapes_channels_strides(out_indices):
    m = small(out_indices=out_indices)
    m.eval()
    x = torch.randn(1, 3, 96, 160)
    outs = m(x)
    assert len(outs) == len(out_indices)
    for i, y in zip(out_indices, outs):
        stride = 4 * 2**i
        assert y.shape == (1, 64 * 2**i, 96 // stride, 160 // stride)


def test_strides_and_dilations_for_output_stride_16():
    m = small(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2))
    m.eval()
    out = m(torch.randn(1, 3, 128, 128))[-1]
    assert out.shape[-2:] == (8, 8)  # output stride 16
    D = m.layer4[0].conv2.dilation_matrix
    assert set(D.unique().tolist()) == {2, 4, 8}
    assert torch.equal(D, 2 * PSConv2d(128, 128, 3).dilation_matrix)


def test_frozen_stages():
    m = small(frozen_stages=2, norm_eval=False)
    m.train()
    for name, p in m.named_parameters():
        frozen = name.startswith(('conv1', 'bn1', 'layer1', 'layer2'))
        assert p.requires_grad is not frozen, name
    assert not m.layer2.training and m.layer3.training
    # a frozen stage's BN statistics do not move in training mode
    before = m.layer2[0].bn1.running_mean.clone()
    m(torch.randn(2, 3, 64, 64))
    assert torch.equal(m.layer2[0].bn1.running_mean, before)
    assert not torch.equal(m.layer3[0].bn1.running_mean, torch.zeros(64))


def test_norm_eval_keeps_bn_statistics():
    m = small(norm_eval=True)
    m.train()
    bns = [mod for mod in m.modules() if isinstance(mod, _BatchNorm)]
    assert bns and all(not bn.training for bn in bns)
    stats = [bn.running_mean.clone() for bn in bns]
    m(torch.randn(2, 3, 64, 64))
    assert all(torch.equal(a, bn.running_mean) for a, bn in zip(stats, bns))
    # but the BN affine parameters still train
    assert all(bn.weight.requires_grad for bn in bns)


def test_zero_init_residual():
    m = small()
    m.init_weights()
    for layer in (m.layer1, m.layer4):
        for block in layer:
            assert torch.count_nonzero(block.norm3.weight) == 0
            assert torch.count_nonzero(block.norm1.weight) > 0


def test_ps_cfg_reaches_every_psconv():
    m = small(ps_cfg=dict(pattern=(1, 2)))
    assert all(mod.pattern == (1, 2) for mod in m.modules()
               if isinstance(mod, PSConv2d))


@pytest.mark.parametrize('kwargs,exc,match', [
    (dict(depth=34), ValueError,
     r'^PSResNet: depth=34; allowed: \[50, 101, 152\]\.$'),
    (dict(out_indices=(0, 4)), ValueError,
     r'^PSResNet: out_indices=\(0, 4\); allowed: a non-empty sequence of '
     r'ints in 0..3\.$'),
    (dict(frozen_stages=5), ValueError,
     r'^PSResNet: frozen_stages=5; allowed: an int in -1 \(none\)..4\.$'),
    (dict(num_stages=5), ValueError, r'^PSResNet: num_stages=5; allowed'),
    (dict(strides=(1, 2, 2)), ValueError,
     r'^PSResNet: strides=\(1, 2, 2\); allowed: 4 ints >= 1 \(one per '
     r'stage\)\.$'),
    (dict(strides=(1, 2, 2, 1.5)), ValueError,
     r'^PSResNet: strides=\(1, 2, 2, 1.5\); allowed'),
    (dict(dilations=(1, 1, 1, 0)), ValueError,
     r'^PSResNet: dilations=\(1, 1, 1, 0\); allowed: 4 ints >= 1'),
    (dict(num_stages=3, out_indices=(0, 1, 2), strides=(1, 2, 2, 2)),
     ValueError,
     r'^PSResNet: strides=\(1, 2, 2, 2\); allowed: 3 ints >= 1'),
    (dict(base_channels=True), ValueError,
     r'^PSResNet: base_channels=True; allowed: an int >= 1\.$'),
    (dict(ps_cfg=dict(pattern=(1, 2, 1))), ValueError,
     r'^PSConv: in_channels=16; allowed: .*t=3'),
    (dict(ps_cfg=dict(pattern=(1, 2.5, 1, 4))), ValueError,
     r'^PSConv: pattern=\(1, 2.5, 1, 4\); allowed: a non-empty sequence of '
     r'ints >= 1'),
    (dict(ps_cfg=dict(pattern=(1, 2, 0, 4))), ValueError,
     r'^PSConv: pattern=\(1, 2, 0, 4\); allowed'),
    (dict(dcn=dict(type='DCN'), stage_with_dcn=(True, ) * 4), ValueError,
     'dcn'),
    (dict(init_cfg=dict(type='Pretrained', checkpoint='nope/ps50.pth')),
     FileNotFoundError, 'nope/ps50.pth'),
    (dict(init_cfg=dict(type='Pretrained',
                        checkpoint='torchvision://resnet50')), ValueError,
     'URL'),
])
def test_bad_arguments_rejected_at_build(kwargs, exc, match):
    args = dict(depth=50, base_channels=16)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        PSResNet(**args)


def test_pretrained_local_checkpoint_loads(tmp_path):
    src = small()
    for p in src.parameters():
        torch.nn.init.normal_(p)
    path = tmp_path / 'ps50.pth'
    torch.save({'state_dict': src.state_dict(), 'meta': {}}, path)
    dst = small(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    dst.init_weights()
    for (k, a), b in zip(src.state_dict().items(),
                         dst.state_dict().values()):
        assert torch.equal(a, b), k


def test_built_from_mmdet_and_mmseg_registries():
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS as SEG_MODELS
    cfg = dict(type='PSResNet', depth=50, base_channels=16)
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert isinstance(DET_MODELS.build(cfg), PSResNet)
    with DefaultScope.overwrite_default_scope('mmseg'):
        assert isinstance(SEG_MODELS.build(cfg), PSResNet)
        # a whole mmseg segmentor: DeepLabv3 ASPP head on PS-ResNet, OS16
        seg = SEG_MODELS.build(
            dict(
                type='EncoderDecoder',
                data_preprocessor=dict(
                    type='SegDataPreProcessor', size=(64, 64)),
                backbone=dict(
                    type='PSResNeXt', depth=50, groups=8, base_width=4,
                    base_channels=16, strides=(1, 2, 2, 1),
                    dilations=(1, 1, 1, 2), out_indices=(3, ),
                    norm_eval=False),
                decode_head=dict(
                    type='ASPPHead', in_channels=512, in_index=0,
                    channels=32, dilations=(1, 6, 12, 18), num_classes=5,
                    align_corners=False,
                    loss_decode=dict(type='CrossEntropyLoss'))))
    seg.eval()
    logits = seg(torch.randn(2, 3, 64, 64), mode='tensor')
    assert isinstance(seg.backbone, PSResNeXt)
    assert logits.shape == (2, 5, 4, 4)
