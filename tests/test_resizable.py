"""Resizable ResNet: resize op, scale-aware BN, fair sampling,
scheduled switching, super-network training, Resizable-NAS lookup table."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.backbones import ResNet
from mmengine.config import Config
from mmengine.registry import HOOKS

from msdet.datasets.synthetic_coco import make_coco_dataset
from msdet.engine import FairSpatialSampler, SubnetSwitchHook, iteration_rng
from msdet.evaluation.complexity import backbone_gflops
from msdet.models.backbones.resizable_resnet import (
    ResizableResNet, resnet_to_resizable_state_dict)
from msdet.ops import SwitchableBatchNorm2d, set_subnet, subnet_space
from msdet.ops.feature_resize import feature_resize
from conftest import load_tool, working_dir

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CFG = osp.join(REPO,
                    'configs/resizable/demo/faster_rcnn_rsr50_fpn_demo.py')
FACTORS = [0.5, 0.625, 0.75, 0.875, 1.0]
# model_zoo.md: ResNet-50 table 1 FLOPs at 224x224 (backbone without fc)
TABLE1 = {4.1: (1.0, 1.0, 1.0, 1.0), 2.8: (0.875, 0.875, 1.0, 1.0),
          2.0: (0.75, 0.875, 1.0, 1.0), 1.1: (0.5, 1.0, 1.0, 0.75)}


@pytest.fixture(scope='module', autouse=True)
def no_onednn():
    """New feature-map sizes per configuration: avoid oneDNN recompiles."""
    with torch.backends.mkldnn.flags(enabled=False):
        yield


def conf(*factors):
    return {f'resize{i + 1}': f for i, f in enumerate(factors)}


def tiny(**kwargs):
    kwargs.setdefault('base_channels', 8)
    m = ResizableResNet(50, norm_eval=False, **kwargs)
    m.init_weights()
    return m


# --- resize op and backbone -------------------------------------------------

def test_resize_op_is_bilinear_by_an_arbitrary_factor():
    x = torch.randn(2, 3, 28, 20)
    y = feature_resize(x, 0.625)
    assert y.shape[-2:] == (18, 12)  # round(17.5), round(12.5) (to even)
    torch.testing.assert_close(y, F.interpolate(
        x, size=(18, 12), mode='bilinear', align_corners=False))
    assert feature_resize(x, 1.0) is x


def test_all_factors_one_is_exactly_mmdet_resnet():
    torch.manual_seed(0)
    rs = tiny(out_indices=(0, 1, 2, 3))
    ref = ResNet(50, base_channels=8, norm_eval=False)
    ref.init_weights()
    with torch.no_grad():  # non-trivial BN parameters and statistics
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-.2, .2)
                m.running_mean.uniform_(-.1, .1)
                m.running_var.uniform_(0.5, 2)
    missing = rs.load_state_dict(
        resnet_to_resizable_state_dict(ref.state_dict(), rs), strict=True)
    assert not missing.missing_keys
    x = torch.randn(2, 3, 64, 80)
    for mode in (False, True):
        rs.train(mode), ref.train(mode)
        for a, b in zip(rs(x), ref(x)):
            assert torch.equal(a, b)
    # every scale-aware BN got the ResNet's BN (all factors)
    bn = rs.layer2[1].bn1
    for sub in bn.bns:
        assert torch.equal(sub.weight, ref.layer2[1].bn1.weight)


def test_resize_sits_at_the_first_non_stride_block_of_each_stage():
    rs = tiny()
    rs.eval()
    assert rs.resize_at == [0, 1, 1, 1]
    seen = {}
    for i, name in enumerate(rs.res_layers):
        for j, block in enumerate(getattr(rs, name)):
            block.register_forward_pre_hook(
                lambda m, a, key=(i, j): seen.__setitem__(
                    key, tuple(a[0].shape[-2:])))
    set_subnet(rs, **conf(0.5, 0.75, 0.625, 0.5))
    outs = rs(torch.randn(1, 3, 128, 128))
    # stem 32 -> s1: 16; layer2 block0 stride 2: 8 -> s2: 6;
    # layer3 block0: 3 -> s3: round(1.875) = 2; layer4 block0: 1 -> 1
    assert seen[(0, 0)] == (16, 16) and seen[(0, 2)] == (16, 16)
    assert seen[(1, 0)] == (16, 16) and seen[(1, 1)] == (6, 6)
    assert seen[(2, 0)] == (6, 6) and seen[(2, 1)] == (2, 2)
    assert seen[(3, 0)] == (2, 2) and seen[(3, 1)] == (1, 1)
    # restored to the plain ResNet's strides for the FPN
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4]
    rs.restore_outputs = False
    assert [o.shape[-1] for o in rs(torch.randn(1, 3, 128, 128))] == \
        [16, 6, 2, 1]


def test_layer1_resized_equals_plain_blocks_on_the_resized_map():
    rs = tiny()
    rs.eval()
    set_subnet(rs, **conf(0.75, 1.0, 1.0, 1.0))
    x = torch.randn(1, 3, 96, 96)
    stem = rs.maxpool(rs.relu(rs.norm1(rs.conv1(x))))
    want = rs.layer1(F.interpolate(stem, size=(18, 18), mode='bilinear',
                                   align_corners=False))
    rs.restore_outputs = False
    assert torch.equal(rs(x)[0], want)


def test_scale_aware_bn_layout_and_space():
    rs = tiny()
    assert subnet_space(rs) == {f'resize{i}': FACTORS for i in range(1, 5)}
    assert isinstance(rs.bn1, nn.BatchNorm2d)  # stem: before any resize
    keys = {n: m.key for n, m in rs.named_modules()
            if isinstance(m, SwitchableBatchNorm2d)}
    assert keys['layer1.0.bn1'] == keys['layer1.0.downsample.1'] == 'resize1'
    assert keys['layer2.0.bn2'] == keys['layer2.0.downsample.1'] == 'resize1'
    assert keys['layer2.1.bn1'] == keys['layer2.3.bn3'] == 'resize2'
    assert keys['layer4.0.bn3'] == 'resize3'
    assert keys['layer4.2.bn3'] == 'resize4'
    assert all(len(m.bns) == 5 for m in rs.modules()
               if isinstance(m, SwitchableBatchNorm2d))
    plain = sum(isinstance(m, nn.BatchNorm2d) for m in ResNet(50).modules())
    assert len(keys) == plain - 1


def test_each_bn_statistics_move_only_when_its_factor_is_active():
    rs = tiny()
    rs.train()
    before = copy.deepcopy(rs.state_dict())
    set_subnet(rs, **conf(1.0, 0.625, 1.0, 0.5))
    rs(torch.randn(2, 3, 64, 64) * 2 + 1)
    active = {'resize1': 1.0, 'resize2': 0.625, 'resize3': 1.0,
              'resize4': 0.5}
    checked = 0
    for name, m in rs.named_modules():
        if not isinstance(m, SwitchableBatchNorm2d):
            continue
        for k, (factor, bn) in enumerate(zip(m.choices, m.bns)):
            key = f'{name}.bns.{k}.running_mean'
            moved = not torch.equal(bn.running_mean, before[key])
            assert moved == (factor == active[m.key]), key
            assert int(bn.num_batches_tracked) == int(moved)
            checked += 1
    assert checked == 52 * 5


def test_flops_fall_with_the_factors():
    rs = tiny(restore_outputs=False)
    rs.eval()
    x = torch.randn(1, 3, 64, 64)

    def g(*f):
        set_subnet(rs, **conf(*f))
        return backbone_gflops(rs, x)

    full, half1, half4, all_half = (g(1, 1, 1, 1), g(.5, 1, 1, 1),
                                    g(1, 1, 1, .5), g(.5, .5, .5, .5))
    assert all_half < half1 < half4 < full
    # everything after the stem runs on a quarter of the pixels
    stem = backbone_gflops(nn.Sequential(rs.conv1, rs.norm1, rs.relu,
                                         rs.maxpool), x)
    assert half1 - stem == pytest.approx((full - stem) / 4, rel=0.1)


def conv_gmacs(model, x):
    total = [0]

    def hook(m, inp, out):
        total[0] += out.numel() * m.in_channels // m.groups * \
            m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total[0] / 1e9


def test_table1_resnet50_flops_at_224():
    """Configurations giving the paper's ResNet-50 FLOPs (table 1), within
    5%; mmengine's FlopAnalyzer checked against the conv count at two."""
    rs = ResizableResNet(50, restore_outputs=False)
    rs.eval()
    x = torch.randn(1, 3, 224, 224)
    for paper, factors in TABLE1.items():
        set_subnet(rs, **conf(*factors))
        assert conv_gmacs(rs, x) == pytest.approx(paper, rel=0.05), factors
    for factors in (TABLE1[4.1], TABLE1[1.1]):
        set_subnet(rs, **conf(*factors))
        assert backbone_gflops(rs, x) == pytest.approx(
            conv_gmacs(rs, x), rel=0.01)


@pytest.mark.parametrize('kwargs,match', [
    (dict(resize_factors=[0.0, 1.0]), r'\[0.0, 1.0\].*\(0, 1\]'),
    (dict(resize_factors=[0.5, 1.2]), r'\[0.5, 1.2\]'),
    (dict(resize_factors=[-0.5, 1.0]), r'allowed'),
    (dict(resize_factors=[]), r'non-empty'),
    (dict(resize_factors=[0.5, 0.5]), r'distinct'),
    (dict(resize_factors=[[0.5, 1.0]] * 3), r'3 lists for 4 stages'),
    (dict(resize_factors=[[1.0]] * 3 + [[0.5, 2.0]]), r'stage 4'),
    (dict(norm_cfg=dict(type='GN', num_groups=4)), r"type 'GN'"),
    (dict(depth=34), r'depth=34'),
    (dict(out_indices=(0, 4)), r'out_indices'),
])
def test_bad_arguments_fail_at_build(kwargs, match):
    kwargs.setdefault('depth', 50)
    with pytest.raises(ValueError, match=match):
        ResizableResNet(**kwargs)


def test_per_stage_factor_lists():
    rs = ResizableResNet(101, base_channels=8,
                         resize_factors=[[1.0], [0.5, 1.0], [0.75, 1.0],
                                         [0.6, 0.8, 1.0]])
    assert subnet_space(rs)['resize4'] == [0.6, 0.8, 1.0]
    with pytest.raises(ValueError, match=r'resize2=0.75 is out of range'):
        set_subnet(rs, resize2=0.75)


# --- fair sampling and scheduled switching ----------------------------------

SPACE = {f'resize{i}': FACTORS for i in range(1, 5)}


def test_fair_sampling_covers_every_stage_factor_once_per_iteration():
    s = FairSpatialSampler()
    s.bind(SPACE)
    configs = set()
    for it in range(30):
        subnets = s.sample(iteration_rng(0, it), it, 0)
        assert len(subnets) == 5  # len(L)
        assert all(sub.scale is None for sub in subnets)
        for key in SPACE:  # a permutation: each (stage, factor) once
            assert sorted(sub.settings[key] for sub in subnets) == FACTORS
        configs |= {tuple(sub.settings.values()) for sub in subnets}
    assert len(configs) > 100  # stages drawn independently


def test_fair_sampling_with_unequal_lists_and_more_subnets():
    space = dict(resize1=[0.5, 1.0], resize2=[0.5, 0.75, 1.0])
    s = FairSpatialSampler(num_subnets=5)
    s.bind(space)
    for it in range(10):
        subs = s.sample(iteration_rng(1, it), it, 0)
        r1 = [x.settings['resize1'] for x in subs]
        r2 = [x.settings['resize2'] for x in subs]
        # non-repetitive until all used: each full block is a permutation
        assert sorted(r1[:2]) == sorted(r1[2:4]) == [0.5, 1.0]
        assert sorted(r2[:3]) == [0.5, 0.75, 1.0]
        assert len(set(r2[3:])) == 2
    s = FairSpatialSampler(factors=dict(resize2=[0.5, 1.0]))
    s.bind(space)
    subs = s.sample(iteration_rng(0, 0), 0, 0)
    assert len(subs) == 2 and {x.settings['resize2'] for x in subs} == \
        {0.5, 1.0}


def test_sampling_is_a_function_of_seed_and_iteration():
    a, b = FairSpatialSampler(), FairSpatialSampler()
    a.bind(SPACE), b.bind(SPACE)
    history = [a.sample(iteration_rng(7, it), it, 0) for it in range(5)]
    np.random.seed(3), torch.manual_seed(3)
    assert b.sample(iteration_rng(7, 4), 4, 0) == history[4]
    assert history[3] != history[4]
    assert a.sample(iteration_rng(8, 4), 4, 0) != history[4]


@pytest.mark.parametrize('switch_at,iters', [
    (dict(iter=3), lambda it, ep: it >= 3),
    (dict(epoch=2), lambda it, ep: ep >= 2),
    (dict(iter=0), lambda it, ep: True),
])
def test_scheduled_switching_trains_only_the_target(switch_at, iters):
    target = conf(0.75, 0.875, 1.0, 1.0)
    s = FairSpatialSampler(target=dict(resize1=0.75, resize2=0.875),
                           switch_at=switch_at)
    s.bind(SPACE)
    assert s.default().settings == target
    for it in range(6):
        epoch = it // 2
        subs = s.sample(iteration_rng(0, it), it, epoch)
        if iters(it, epoch):
            assert [(x.name, x.settings) for x in subs] == [
                ('target', target)]
        else:
            assert len(subs) == 5


@pytest.mark.parametrize('kwargs,space,match', [
    (dict(switch_at=dict(step=3)), SPACE, r'switch_at=\{.step.: 3\}'),
    (dict(switch_at=dict(iter=-1)), SPACE, r'int >= 0'),
    (dict(switch_at=dict(iter=1, epoch=1)), SPACE, r'dict\(iter=N\)'),
    (dict(num_subnets=0), SPACE, r'num_subnets=0'),
    (dict(factors=dict(resize1=[0.0])), SPACE, r'\(0, 1\]'),
    (dict(factors=dict(resize1=[0.55])), SPACE, r"not in the model's"),
    (dict(target=dict(resize1=0.3)), SPACE, r'target resize1=0.3'),
    (dict(target=dict(resize9=1.0)), SPACE, r"\['resize9'\]"),
    (dict(), {'width': [0.5, 1.0]}, r'no resize factors'),
])
def test_bad_sampler_config_fails_early(kwargs, space, match):
    with pytest.raises(ValueError, match=match):
        s = HOOKS.build(dict(type='SubnetSwitchHook', sampler=dict(
            type='FairSpatialSampler', **kwargs))).sampler
        s.bind(space)


# --- training on the embedded dataset ---------------------------------------

SMALL_CFG = f"""
_base_ = {DEMO_CFG!r}
model = dict(
    backbone=dict(base_channels=8, resize_factors=[0.5, 1.0]),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=32),
                  bbox_head=dict(in_channels=32, fc_out_channels=64)),
    train_cfg=dict(rpn=dict(sampler=dict(num=64)),
                   rcnn=dict(sampler=dict(num=64))))
custom_hooks = [dict(type='SubnetSwitchHook', calib_images=0,
                     sampler=dict(type='FairSpatialSampler',
                                  switch_at=dict(iter=4)))]
_resize = dict(type='Resize', scale=(96, 96), keep_ratio=True)
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations',
                                         with_bbox=True),
    _resize, dict(type='PackDetInputs')]))
val_dataloader = dict(batch_size=2, dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'), _resize,
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                          'img_shape', 'scale_factor'))]))
test_dataloader = val_dataloader
param_scheduler = []
train_cfg = dict(type='SubnetEpochBasedTrainLoop', max_epochs=3, val_interval=100)
default_hooks = dict(checkpoint=dict(interval=3))
"""


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """3 epochs x 2 iterations (4 images, batch 2) of super-network
    training, switching to the target (all 1.0) from iteration 4."""
    root = tmp_path_factory.mktemp('resizable')
    make_coco_dataset(root / 'data/coco_demo', num_train=4, num_val=4,
                      image_size=128)
    (root / 'small.py').write_text(SMALL_CFG)
    records = []
    original = SubnetSwitchHook.before_train_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        original(self, runner, batch_idx, data_batch)
        records.append((runner.iter, self.subnets))

    SubnetSwitchHook.before_train_iter = before_train_iter
    try:
        with working_dir(root):
            runner = load_tool('train').main(
                ['small.py', '--work-dir', 'wd', '--cfg-options',
                 'randomness.seed=5'])
            yield root, runner, records
    finally:
        SubnetSwitchHook.before_train_iter = original


def test_training_samples_fairly_then_switches(trained):
    _, runner, records = trained
    assert [it for it, _ in records] == list(range(6))
    for it, subnets in records:
        if it < 4:
            assert [s.name for s in subnets] == ['fair1', 'fair2']
            for key in ('resize1', 'resize2', 'resize3', 'resize4'):
                assert sorted(s.settings[key] for s in subnets) == [0.5, 1.0]
            ref = FairSpatialSampler()
            ref.bind({f'resize{i}': [0.5, 1.0] for i in range(1, 5)})
            assert subnets == ref.sample(iteration_rng(5, it), it, 0)
        else:
            assert [s.name for s in subnets] == ['target']
            assert subnets[0].settings == conf(1.0, 1.0, 1.0, 1.0)
    hub = runner.message_hub
    assert len(hub.get_scalar('train/fair1_loss').data[0]) == 4
    assert len(hub.get_scalar('train/target_loss').data[0]) == 2
    bb = runner.model.backbone
    assert bb.factors == [1.0] * 4  # left at the target
    # BN of factor 0.5 trained in the 4 fair iterations only (1 of 2
    # sub-networks each), factor 1.0 in those and the 2 target iterations
    bn = bb.layer3[2].bn2
    assert int(bn.bns[0].num_batches_tracked) == 4
    assert int(bn.bns[1].num_batches_tracked) == 6


def test_nas_lookup_table_best_under_budget_and_finetune(trained):
    root, runner, _ = trained
    nas = load_tool('analysis/resizable_nas')
    out = nas.main(['small.py', 'wd/epoch_3.pth', '--configurations',
                    '1,1,1,1', '0.5,1,1,1', '0.5,0.5,0.5,0.5',
                    '--max-gflops', '1000', '--work-dir', 'nas'])
    rows = out['rows']
    assert [r['subnet'] for r in rows] == [
        'resize1=1.0, resize2=1.0, resize3=1.0, resize4=1.0',
        'resize1=0.5, resize2=1.0, resize3=1.0, resize4=1.0',
        'resize1=0.5, resize2=0.5, resize3=0.5, resize4=0.5']
    bb = [r['gflops_backbone'] for r in rows]
    assert bb[0] > bb[1] > bb[2] > 0
    assert osp.isfile(root / 'nas/lookup_table.csv')
    best = max(rows, key=lambda r: r['bbox_AP'])
    assert out['best']['subnet'] == best['subnet']
    # a budget below the full model's cost excludes it
    cheap = nas.query_best(rows, max_gflops=rows[1]['gflops_model'])
    assert cheap['subnet'] != rows[0]['subnet']
    ft = Config.fromfile(out['finetune'])
    hook = [h for h in ft.custom_hooks if h.type == 'SubnetSwitchHook'][0]
    assert hook.sampler.target == out['settings']
    assert hook.sampler.switch_at == dict(iter=0)
    assert ft.load_from == osp.abspath('wd/epoch_3.pth')
    assert ft.train_cfg.max_epochs == 2
    with pytest.raises(ValueError, match=r"'0.3,1,1,1'.*resize1=0.3"):
        nas.main(['small.py', 'wd/epoch_3.pth', '--configurations',
                  '0.3,1,1,1'])


def test_converter_copies_each_bn_into_every_scale_aware_bn(tmp_path):
    torch.manual_seed(0)
    ref = ResNet(50, base_channels=8)
    ref.eval()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-.1, .1)
    state = dict(ref.state_dict(), **{'fc.weight': torch.zeros(10, 256),
                                      'fc.bias': torch.zeros(10)})
    torch.save(state, tmp_path / 'tv.pth')
    conv = load_tool('model_converters/resizable_resnet')
    meta = conv.main([str(tmp_path / 'tv.pth'), str(tmp_path / 'rs.pth'),
                      '--factors', '0.5', '1.0'])
    assert meta['backbone']['base_channels'] == 8
    assert meta['dropped'] == ['fc.weight', 'fc.bias']
    rs = ResizableResNet(50, base_channels=8, resize_factors=[0.5, 1.0],
                         init_cfg=dict(type='Pretrained',
                                       checkpoint=str(tmp_path / 'rs.pth')))
    rs.init_weights()
    rs.eval()
    assert torch.equal(rs.layer3[0].downsample[1].bns[0].running_mean,
                       ref.layer3[0].downsample[1].running_mean)
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(rs(x), ref(x)):
        assert torch.equal(a, b)
