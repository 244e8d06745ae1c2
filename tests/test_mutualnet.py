"""MutualNet: slimmable VGG-16 in Mask R-CNN FPN, the sub-network
switching hook and train step, BN post-statistics."""
import copy
import os
import os.path as osp
from types import SimpleNamespace

import mmcv
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmcv.cnn import VGG
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.registry import HOOKS, TASK_UTILS, DefaultScope

from msdet.datasets.synthetic_coco import make_coco_dataset
from msdet.engine import (SandwichSampler, Subnet, SubnetSwitchHook,
                          iteration_rng, multi_subnet_train_step,
                          recalibrate_bn, rescale_batch)
from msdet.engine.subnet_loops import SubnetTrainLoop
from msdet.models.backbones.slimmable_vgg import SlimmableVGG
from msdet.ops import (Range, SlimmableBatchNorm2d, SlimmableConv2d,
                       SwitchableBatchNorm2d, set_subnet, subnet_space)
from conftest import load_tool, working_dir

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CFG = osp.join(REPO,
                    'configs/mutualnet/demo/mask_rcnn_slimvgg16_fpn_demo.py')
SCALES = [(128, 128), (102, 102), (77, 77), (51, 51)]
# The demo config, smaller still: 1/8-width VGG-16, 128 px, light heads.
SMALL_CFG = f"""
_base_ = {DEMO_CFG!r}
model = dict(
    backbone=dict(base_channels=8, divisor=2),
    neck=dict(in_channels=[16, 32, 64, 64], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64),
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(in_channels=32, conv_out_channels=16, num_convs=2)),
    train_cfg=dict(rpn=dict(sampler=dict(num=64)),
                   rcnn=dict(sampler=dict(num=64))))
custom_hooks = [dict(type='SubnetSwitchHook', calib_images=4,
                     sampler=dict(type='SandwichSampler', scales={SCALES}))]
train_cfg = dict(type='SubnetEpochBasedTrainLoop')
_resize = dict(type='Resize', scale=(128, 128), keep_ratio=True)
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    _resize, dict(type='RandomFlip', prob=0.5), dict(type='PackDetInputs')]))
val_dataloader = dict(batch_size=2, dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'), _resize,
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                          'img_shape', 'scale_factor'))]))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = []
"""


@pytest.fixture(scope='module', autouse=True)
def no_onednn():
    """Random widths and scales give new conv shapes every iteration; on CPU
    oneDNN compiles a kernel per new shape (~0.1 s per conv), torch's own
    conv does not: 3-5x faster tests."""
    with torch.backends.mkldnn.flags(enabled=False):
        yield


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    """A tiny 128 px embedded dataset at ./data/coco_demo (the demo config's
    data_root) and the small config; tests run in this directory."""
    root = tmp_path_factory.mktemp('mutualnet')
    make_coco_dataset(root / 'data/coco_demo', num_train=4, num_val=4,
                      image_size=128)
    (root / 'small.py').write_text(SMALL_CFG)
    with working_dir(root):
        yield root


@pytest.fixture(scope='module')
def cfg(workdir):
    return Config.fromfile(str(workdir / 'small.py'))


def build(cfg_model):
    from mmdet.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(copy.deepcopy(cfg_model))
    model.init_weights()
    return model


@pytest.fixture(scope='module')
def data(cfg):
    """Two training images through the train pipeline (no flip)."""
    from mmdet.registry import DATASETS
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.pipeline = [t for t in ds_cfg.pipeline if t.type != 'RandomFlip']
    with DefaultScope.overwrite_default_scope('mmdet'):
        ds = DATASETS.build(ds_cfg)
    return pseudo_collate([ds[0], ds[1]])


# --- backbone -------------------------------------------------------------

def test_full_width_backbone_is_mmcv_vgg16_bn():
    torch.manual_seed(0)
    slim = SlimmableVGG(depth=16)
    slim.init_weights()
    vgg = VGG(16, with_bn=True, out_indices=(1, 2, 3, 4), bn_eval=False)
    vgg.load_state_dict(slim.state_dict(), strict=True)  # same layout
    x = torch.randn(2, 3, 64, 96)
    for mode in (True, False):
        slim.train(mode), vgg.train(mode)
        outs, ref = slim(x), vgg(x)
        assert [o.shape[1] for o in outs] == [128, 256, 512, 512]
        assert [x.shape[-1] // o.shape[-1] for o in outs] == [4, 8, 16, 32]
        for a, b in zip(outs, ref):
            assert torch.equal(a, b)


def test_width_w_backbone_is_the_narrow_vgg_with_first_channels():
    torch.manual_seed(0)
    slim = SlimmableVGG(base_channels=16, divisor=4)
    narrow = SlimmableVGG(base_channels=8, divisor=4)
    with torch.no_grad():
        for m in slim.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    sliced = {k: v[tuple(slice(0, n) for n in narrow.state_dict()[k].shape)]
              for k, v in slim.state_dict().items()}
    narrow.load_state_dict(sliced)
    set_subnet(slim, width=0.5)
    x = torch.randn(2, 3, 64, 64)
    for a, b in zip(slim(x), narrow(x)):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def release_channels(channels, width, divisor=8):
    """Channels of a width-``width`` layer in the released slimmable ops
    (US-Net / MutualNet ``make_divisible(C * w / ratio) * ratio``, ratio 1),
    spelt out from their definition: the nearest multiple of the divisor
    (``int(v + d / 2) // d * d``), at least 1, plus one divisor where that
    lost more than 10% of ``v``."""
    v = channels * width / 1
    n = max(1, int(v + divisor / 2) // divisor * divisor)
    return n + divisor if n < 0.9 * v else n


def test_width_rounding_is_the_releases_for_every_layer_and_width():
    """Widths 0.01..1.00: every conv of VGG-16 has the release's channel
    count (e.g. 24 of 64 at 0.28-0.31, where nearest-multiple rounding
    gives 16), and so does every private BN of ``switchable_bn``."""
    bb = SlimmableVGG(depth=16, width_range=(0.01, 1.0)).eval()
    convs = [m for m in bb.modules() if isinstance(m, SlimmableConv2d)]
    assert [c.out_channels for c in convs] == \
        [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6
    seen = []
    for conv in convs:
        conv.register_forward_hook(lambda m, i, out: seen.append(out.shape[1]))
    x = torch.randn(1, 3, 32, 32)
    mismatches = []
    for k in range(1, 101):
        width = k / 100
        set_subnet(bb, width=width)
        seen.clear()
        with torch.no_grad():
            bb(x)
        want = [release_channels(c.out_channels, width) for c in convs]
        if seen != want:
            mismatches.append((width, seen[:], want))
    assert not mismatches
    assert release_channels(64, 0.3) == 24 and release_channels(64, 0.02) == 9
    widths = [0.03, 0.3, 0.43, 0.56, 1.0]
    sw = SlimmableVGG(depth=16, width_range=(0.01, 1.0), switchable_bn=widths)
    for conv, bn in zip(convs, [m for m in sw.modules()
                                if isinstance(m, SwitchableBatchNorm2d)]):
        assert [b.num_features for b in bn.bns] == \
            [release_channels(conv.out_channels, w) for w in widths]


def test_backbone_flops_follow_w_squared():
    """GFLOPs of width 0.25 are ~1/16 of width 1.0 (only the RGB input conv
    keeps its 3 input channels)."""
    slim = SlimmableVGG(depth=16).eval()
    x = torch.randn(1, 3, 64, 64)

    def gflops(width):
        set_subnet(slim, width=width)
        return FlopAnalyzer(slim, (x, )).total() / 1e9

    full, quarter = gflops(1.0), gflops(0.25)
    # VGG-16 convs at 64x64: 15.35 GMAC x (64 / 224)^2
    assert full == pytest.approx(15.35 * (64 / 224)**2, rel=0.02)
    assert 1 / 16 <= quarter / full < 1.05 / 16


def test_switchable_bn_option():
    bb = SlimmableVGG(base_channels=8, divisor=2, switchable_bn=[0.25, 0.5,
                                                                 1.0])
    assert subnet_space(bb) == {'width': [0.25, 0.5, 1.0]}
    with pytest.raises(ValueError, match=r'width=0.3.*one of'):
        set_subnet(bb, width=0.3)
    set_subnet(bb, width=0.5)
    bb.train()
    bb(torch.randn(2, 3, 32, 32) + 3)
    first = bb.features[1]
    assert first.bns[1].num_batches_tracked == 1
    assert first.bns[0].num_batches_tracked == 0
    assert first.bns[2].num_batches_tracked == 0
    assert SlimmableVGG(switchable_bn=[0.5, 1.0], norm_eval=True).norm_eval


def test_frozen_stages_and_norm_eval():
    bb = SlimmableVGG(base_channels=8, frozen_stages=1,
                      switchable_bn=[0.5, 1.0], norm_eval=True).train()
    stage1 = bb.stage_ranges[1][0]  # first module of stage 1
    assert not any(p.requires_grad for p in bb.features[:stage1].parameters())
    assert all(p.requires_grad for p in bb.features[stage1:].parameters()
               if p.dim() > 1)
    assert not bb.features[stage1 + 1].bns[1].training  # norm_eval
    bb = SlimmableVGG(base_channels=8, frozen_stages=1).train()
    assert not bb.features[1].training and bb.features[stage1 + 1].training


@pytest.mark.parametrize('kwargs,match', [
    (dict(depth=15), r'depth=15; allowed: \[11, 13, 16, 19\]'),
    (dict(width_range=(0.0, 1.0)), r'0 < min <= max <= 1'),
    (dict(width_range=(0.8, 0.5)), r'0 < min <= max <= 1'),
    (dict(width_range=(0.25, 1.2)), r'0 < min <= max <= 1'),
    (dict(out_indices=(1, 5)), r'out_indices=\(1, 5\)'),
    (dict(frozen_stages=6), r'frozen_stages=6'),
    (dict(norm_eval=True), r'norm_eval=True freezes BN statistics'),
    (dict(switchable_bn=[0.1, 1.0]), r'switchable_bn=\[0.1, 1.0\]'),
    (dict(norm_cfg=dict(type='GN', num_groups=8)), r"type 'GN'"),
    (dict(init_cfg=dict(type='Pretrained', checkpoint='no/such.pth')),
     r'no/such.pth'),
])
def test_bad_backbone_args_fail_at_build(kwargs, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        SlimmableVGG(**kwargs)


def test_sync_bn_is_refused_for_shared_bns_at_build(cfg):
    """mmengine's sync_bn turns each BN into a full-width SyncBatchNorm:
    shared width-sliced BNs then fail at narrow widths, private per-width
    BNs convert correctly. msdet's tools refuse the former before the
    runner is built."""
    from mmengine.model.utils import convert_sync_batchnorm
    from msdet.ops.switchable import check_sync_bn
    from msdet.utils.config import build_runner
    x = torch.randn(1, 3, 32, 32)
    shared = convert_sync_batchnorm(SlimmableVGG(base_channels=8)).eval()
    set_subnet(shared, width=0.5)
    with pytest.raises(RuntimeError):
        shared(x)
    private = SlimmableVGG(base_channels=8, switchable_bn=[0.5, 1.0]).eval()
    synced = convert_sync_batchnorm(copy.deepcopy(private)).eval()
    assert isinstance(synced.features[1].bns[0], nn.SyncBatchNorm)
    for model in (private, synced):
        set_subnet(model, width=0.5)
    with torch.no_grad():
        for a, b in zip(private(x), synced(x)):
            torch.testing.assert_close(a, b)

    run_cfg = copy.deepcopy(cfg)
    run_cfg.merge_from_dict(dict(sync_bn='torch', launcher='pytorch'))
    with pytest.raises(ValueError, match=r"sync_bn='torch': .* 13 width-"
                       r'sliced BNs .*backbone.features.1, .*Remove sync_bn'
                       r'.*switchable_bn=\[w1, w2, ...\]'):
        build_runner(run_cfg)
    run_cfg.model.backbone.switchable_bn = [0.25, 1.0]
    check_sync_bn(run_cfg)  # private BNs: allowed
    run_cfg.model.backbone.switchable_bn = None
    run_cfg.launcher = 'none'
    check_sync_bn(run_cfg)  # not distributed: mmengine converts nothing


# --- detector -------------------------------------------------------------

def test_full_width_detector_is_an_ordinary_vgg16_fpn_mask_rcnn(cfg, data):
    """Full width: mmcv's VGG-16-BN + mmdet's plain FPN with the same
    weights give the same losses and predictions."""
    from mmdet.models.necks import FPN
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.update(base_channels=64, divisor=8)
    model_cfg.neck.in_channels = [128, 256, 512, 512]
    det = build(model_cfg)
    ref = copy.deepcopy(det)
    ref.backbone = VGG(16, with_bn=True, out_indices=(1, 2, 3, 4),
                       bn_eval=False)
    neck_cfg = {k: v for k, v in model_cfg.neck.items()
                if k not in ('type', 'conv_cfg')}
    ref.neck = FPN(**neck_cfg)
    ref.load_state_dict(det.state_dict(), strict=True)
    assert type(ref.neck.lateral_convs[0].conv) is nn.Conv2d
    batch = det.data_preprocessor(data, True)
    for model in (det, ref):
        model.train()
    torch.manual_seed(1)
    losses = det(**batch, mode='loss')
    torch.manual_seed(1)
    ref_losses = ref(**batch, mode='loss')
    for key, value in losses.items():
        torch.testing.assert_close(value, ref_losses[key], msg=key)
    det.eval(), ref.eval()
    with torch.no_grad():
        batch = det.data_preprocessor(data, False)
        got = det(**copy.deepcopy(batch), mode='predict')
        want = ref(**copy.deepcopy(batch), mode='predict')
    for a, b in zip(got, want):
        torch.testing.assert_close(a.pred_instances.bboxes,
                                   b.pred_instances.bboxes)
        torch.testing.assert_close(a.pred_instances.scores,
                                   b.pred_instances.scores)


def test_detector_switches_backbone_only(cfg):
    det = build(cfg.model).eval()
    assert subnet_space(det) == {'width': Range(0.25, 1.0)}
    set_subnet(det, width=0.25)
    feats = det.backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [4, 8, 16, 16]
    outs = det.neck(feats)
    assert all(o.shape[1] == 32 for o in outs)  # the FPN stays full width
    # sliced lateral convs == the full FPN on zero-filled features
    full = [torch.cat([f, f.new_zeros(1, c - f.shape[1], *f.shape[2:])], 1)
            for f, c in zip(feats, cfg.model.neck.in_channels)]
    for a, b in zip(outs, det.neck(full)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# --- sampler --------------------------------------------------------------

def test_sandwich_rule_with_resolutions():
    sampler = SandwichSampler(scales=SCALES[::-1])
    sampler.bind({'width': Range(0.25, 1.0)})
    for it in range(20):
        subnets = sampler.sample(iteration_rng(0, it), it, 0)
        assert [s.name for s in subnets] == ['largest', 'smallest',
                                             'random1', 'random2']
        assert subnets[0].settings == {'width': 1.0}
        assert subnets[0].scale == (128, 128)  # highest, always
        assert subnets[1].settings == {'width': 0.25}
        for s in subnets[2:]:
            assert 0.25 <= s.settings['width'] <= 1.0
        for s in subnets[1:]:
            assert s.scale in SCALES
    seen = {s.scale for it in range(20)
            for s in sampler.sample(iteration_rng(0, it), it, 0)[1:]}
    assert seen == set(SCALES)  # random resolutions cover the list
    assert sampler.default() == Subnet('largest', {'width': 1.0}, (128, 128))


def test_usnet_mode_trains_at_one_resolution():
    sampler = SandwichSampler(scales=[(1000, 600)], num_subnets=3,
                              mode='usnet')
    sampler.bind({'width': Range(0.25, 1.0)})
    subnets = sampler.sample(iteration_rng(3, 7), 7, 0)
    assert len(subnets) == 3
    assert {s.scale for s in subnets} == {(1000, 600)}


def test_discrete_widths_for_switchable_bn():
    sampler = SandwichSampler(width_range=(0.25, 1.0))
    sampler.bind({'width': [0.25, 0.5, 0.75, 1.0]})
    widths = {s.settings['width'] for it in range(10)
              for s in sampler.sample(iteration_rng(0, it), it, 0)[2:]}
    assert widths == {0.5, 0.75}


def test_sampling_is_a_function_of_seed_and_iteration():
    """Every DDP rank, and a resumed run, draws the same sub-networks:
    nothing depends on a process's RNG state or on earlier iterations."""
    a, b = SandwichSampler(), SandwichSampler()
    for s in (a, b):
        s.bind({'width': Range(0.25, 1.0)})
    history = [a.sample(iteration_rng(42, it), it, 0) for it in range(6)]
    np.random.seed(1), torch.manual_seed(1)  # another "rank"'s state
    assert b.sample(iteration_rng(42, 5), 5, 0) == history[5]
    assert history[4] != history[5]
    assert a.sample(iteration_rng(43, 5), 5, 0) != history[5]


@pytest.mark.parametrize('sampler,match', [
    (dict(width_range=(0, 1.0)), r'width_range=\(0, 1.0\)'),
    (dict(width_range=(0.25, 1.5)), r'0 < min <= max <= 1'),
    (dict(width_range=(0.9, 0.5)), r'0 < min <= max <= 1'),
    (dict(scales=[]), r'scales=\[\]; allowed: a non-empty list'),
    (dict(scales=[(1000, 0)]), r'scales=\[\(1000, 0\)\]'),
    (dict(scales=[(1000, -600)]), r'positive ints'),
    (dict(num_subnets=1), r'num_subnets=1'),
    (dict(mode='random'), r"mode='random'"),
    (dict(mode='usnet'), r"mode='usnet' trains at one fixed scale"),
])
def test_bad_hook_config_fails_at_build(sampler, match):
    with pytest.raises(ValueError, match=match):
        HOOKS.build(dict(type='SubnetSwitchHook',
                         sampler=dict(type='SandwichSampler', **sampler)))


def test_bad_calib_images_fails_at_build():
    with pytest.raises(ValueError, match='calib_images=-1'):
        HOOKS.build(dict(type='SubnetSwitchHook', calib_images=-1,
                         sampler=dict(type='SandwichSampler')))


def test_sampler_must_fit_the_model():
    with pytest.raises(ValueError, match='cannot switch width'):
        SandwichSampler().bind({})
    with pytest.raises(ValueError, match=r"does not fit the model's widths"):
        SandwichSampler(width_range=(0.1, 1.0)).bind(
            {'width': Range(0.25, 1.0)})


# --- the same batch at another scale --------------------------------------

def test_rescale_batch_keeps_images_boxes_masks_and_metas_consistent(data):
    small = rescale_batch(data, (77, 77))
    for img, sample, src, src_sample in zip(
            small['inputs'], small['data_samples'], data['inputs'],
            data['data_samples']):
        h, w = src.shape[-2:]
        (new_w, new_h), factor = mmcv.rescale_size((w, h), (77, 77), True)
        assert img.shape[-2:] == (new_h, new_w) == sample.img_shape
        assert img.dtype == torch.uint8
        want = mmcv.imresize(src.permute(1, 2, 0).numpy(), (new_w, new_h))
        assert np.array_equal(img.permute(1, 2, 0).numpy(), want)
        sx, sy = new_w / w, new_h / h
        np.testing.assert_allclose(
            sample.scale_factor,
            np.array(src_sample.scale_factor) * (sx, sy))
        torch.testing.assert_close(
            sample.gt_instances.bboxes.tensor,
            src_sample.gt_instances.bboxes.tensor *
            torch.tensor([sx, sy, sx, sy]))
        masks = sample.gt_instances.masks
        assert masks.masks.shape[1:] == (new_h, new_w)
        area = src_sample.gt_instances.masks.areas * sx * sy
        np.testing.assert_allclose(masks.areas, area, rtol=0.25, atol=8)
        assert torch.equal(sample.gt_instances.labels,
                           src_sample.gt_instances.labels)
        assert src_sample.img_shape == (h, w)  # the input is untouched
    assert rescale_batch(data, (128, 128))['inputs'][0] is data['inputs'][0]


# --- the multi-sub-network train step ---------------------------------------

class RecordingOptimWrapper(OptimWrapper):
    """Records the accumulated gradients when the optimizer steps."""

    def step(self, **kwargs):
        self.steps = getattr(self, 'steps', 0) + 1
        self.grads = {n: p.grad.clone() for n, p in self.named.items()
                      if p.grad is not None}
        super().step(**kwargs)


SUBNETS = [Subnet('largest', {'width': 1.0}, (128, 128)),
           Subnet('smallest', {'width': 0.25}, (77, 77)),
           Subnet('random1', {'width': 0.6}, (102, 102))]


def test_train_step_accumulates_gradients_and_steps_once(cfg, data):
    torch.manual_seed(0)
    det = build(cfg.model).train()
    ow = RecordingOptimWrapper(torch.optim.SGD(det.parameters(), lr=0.0))
    ow.named = dict(det.named_parameters())
    torch.manual_seed(5)
    log = multi_subnet_train_step(det, data, ow, SUBNETS)
    assert ow.steps == 1
    assert all(p.grad is None or not p.grad.any() for p in det.parameters())
    # each sub-network alone, same order (same RNG use), grads summed
    torch.manual_seed(5)
    want, losses = {}, {}
    for subnet in SUBNETS:
        set_subnet(det, **subnet.settings)
        batch = det.data_preprocessor(rescale_batch(data, subnet.scale), True)
        loss, _ = det.parse_losses(det(**batch, mode='loss'))
        losses[subnet.name] = loss
        names = [n for n, p in det.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(
            loss, [ow.named[n] for n in names], allow_unused=True)
        for n, g in zip(names, grads):
            if g is not None:
                want[n] = want.get(n, 0) + g
    assert set(want) == set(ow.grads)
    for n, g in want.items():
        torch.testing.assert_close(ow.grads[n], g, rtol=1e-4, atol=1e-6,
                                   msg=n)
    for name, loss in losses.items():
        torch.testing.assert_close(log[f'{name}_loss'], loss.detach())
    torch.testing.assert_close(log['loss'], sum(losses.values()).detach())
    assert 0 <= float(log['acc']) <= 100  # averaged, not summed


def test_narrow_subnet_uses_every_parameter(cfg, data):
    """Sliced weights keep every parameter in the graph: no unused
    parameters for DDP, even for the smallest sub-network alone."""
    det = build(cfg.model).train()
    ow = RecordingOptimWrapper(torch.optim.SGD(det.parameters(), lr=0.0))
    ow.named = dict(det.named_parameters())
    multi_subnet_train_step(det, data, ow, SUBNETS[1:2])
    backbone = {n for n in ow.named if n.startswith(('backbone', 'neck'))}
    assert backbone <= set(ow.grads)
    conv = 'backbone.features.3.weight'  # 8 -> 8 channels, width 0.25: 2
    assert ow.grads[conv][:2, :2].abs().sum() > 0
    assert ow.grads[conv][2:].abs().sum() == 0


# --- BN post-statistics -----------------------------------------------------

def test_recalibrate_bn_is_the_cumulative_average(cfg, data):
    det = build(cfg.model).train()
    first_bn = det.backbone.features[1]
    weights = {k: v.clone() for k, v in det.state_dict().items()
               if 'running' not in k and 'num_batches' not in k}
    loader = [data, data]  # 2 batches of 2 images; 3 images asked
    used = recalibrate_bn(det, loader, num_images=3, subnet=dict(width=0.5),
                          scale=(102, 102))
    assert used == 3
    assert det.backbone.features[0].width == 0.5  # left at the sub-network
    assert det.training and first_bn.training and first_bn.momentum == 0.1
    state = det.state_dict()
    for k, v in weights.items():
        assert torch.equal(state[k], v), k
    # expected: mean over the batches of the per-batch channel means of the
    # first conv's output (the batch the model saw: rescaled, padded)
    means = []
    for batch in (data, {k: v[:1] for k, v in data.items()}):
        x = det.data_preprocessor(rescale_batch(batch, (102, 102)),
                                  False)['inputs']
        with torch.no_grad():
            y = det.backbone.features[0](x)
        means.append(y.mean((0, 2, 3)))
    c = 4  # 8 channels at width 0.5
    torch.testing.assert_close(first_bn.running_mean[:c],
                               (means[0] + means[1]) / 2)
    assert torch.equal(first_bn.running_mean[c:], torch.zeros(8 - c))
    assert first_bn.num_batches_tracked == 2
    with pytest.raises(ValueError, match='num_images=0'):
        recalibrate_bn(det, loader, num_images=0)


def test_recalibrate_keeps_other_private_bns(cfg, data):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.switchable_bn = [0.25, 0.5, 1.0]
    det = build(model_cfg)
    bns = det.backbone.features[1].bns
    with torch.no_grad():
        for bn in bns:
            bn.running_mean.fill_(7.0)
    recalibrate_bn(det, [data], num_images=2, subnet=dict(width=0.25))
    assert not torch.equal(bns[0].running_mean, torch.full_like(
        bns[0].running_mean, 7.0))
    for bn in bns[1:]:
        assert torch.equal(bn.running_mean,
                           torch.full_like(bn.running_mean, 7.0))


def test_recalibrate_leaves_frozen_bns_alone(cfg, data):
    """BNs that training keeps fixed keep their statistics: a frozen stage,
    a BN whose affine does not train, every BN under norm_eval; also when
    the model is in eval mode at the call (as in the scale sweep)."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.frozen_stages = 1
    det = build(model_cfg)
    feats = det.backbone.features
    frozen_bn = feats[1]  # stage 0 (frozen)
    fixed_bn = feats[8]  # stage 1, its affine frozen by hand
    live_bn = feats[11]  # stage 1
    fixed_bn.requires_grad_(False)
    for bn in (frozen_bn, fixed_bn, live_bn):
        bn.running_mean.fill_(7.0)
    det.eval()
    recalibrate_bn(det, [data], num_images=2)
    seven = torch.full_like(frozen_bn.running_mean, 7.0)
    assert torch.equal(frozen_bn.running_mean, seven)
    assert torch.equal(fixed_bn.running_mean, torch.full_like(
        fixed_bn.running_mean, 7.0))
    assert not torch.equal(live_bn.running_mean, torch.full_like(
        live_bn.running_mean, 7.0))
    assert not det.training and not live_bn.training  # modes restored
    det.train()
    assert not frozen_bn.training and live_bn.training

    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.update(switchable_bn=[0.25, 1.0], norm_eval=True)
    det = build(model_cfg).train()
    before = {k: v.clone() for k, v in det.backbone.state_dict().items()}
    recalibrate_bn(det, [data], num_images=2)
    for k, v in det.backbone.state_dict().items():
        assert torch.equal(v, before[k]), k


# --- training with the hook -------------------------------------------------

@pytest.fixture(scope='module')
def trained(workdir):
    """6 epochs of 2 iterations (4 images, batch 2), validated at the end,
    then the last epoch again resumed from epoch 5; the sampled
    sub-networks are recorded."""
    records = []
    original = SubnetSwitchHook.before_train_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        original(self, runner, batch_idx, data_batch)
        records[-1].append((runner.iter, self.subnets))

    SubnetSwitchHook.before_train_iter = before_train_iter
    args = ['--cfg-options', 'train_cfg.max_epochs=6',
            'default_hooks.checkpoint.interval=5', 'randomness.seed=3']
    try:
        records.append([])
        runner = load_tool('train').main(
            ['small.py', '--work-dir', 'wd'] + args +
            ['train_cfg.val_interval=6'])
        records.append([])
        resumed = load_tool('train').main(
            ['small.py', '--work-dir', 'wd_resume', '--resume',
             'wd/epoch_5.pth'] + args +
            ['val_dataloader=None', 'val_cfg=None', 'val_evaluator=None'])
    finally:
        SubnetSwitchHook.before_train_iter = original
    return runner, records[0], resumed, records[1]


def test_every_subnet_loss_falls(trained):
    runner = trained[0]
    for name in ('largest', 'smallest', 'random1', 'random2'):
        values = runner.message_hub.get_scalar(f'train/{name}_loss').data[0]
        assert len(values) == 12
        first, last = values[:3].mean(), values[-3:].mean()
        assert last < 0.9 * first, (name, values)


def test_training_samples_the_sandwich_and_leaves_full_width(trained):
    runner, record = trained[:2]
    assert [it for it, _ in record] == list(range(12))
    for _, subnets in record:
        assert subnets[0].settings == {'width': 1.0}
        assert subnets[1].settings == {'width': 0.25}
    assert len({s[2].settings['width'] for _, s in record}) == 12
    assert runner.model.backbone.features[0].width == 1.0
    assert 'train_step' not in vars(runner.model)  # restored after training
    hook = [h for h in runner.hooks if isinstance(h, SubnetSwitchHook)][0]
    assert hook._calibrated and hook.seed == 3


def test_resume_continues_the_same_sampling(trained):
    _, record, resumed, resumed_record = trained
    assert resumed.iter == 12
    assert [it for it, _ in resumed_record] == [10, 11]
    assert [s for _, s in resumed_record] == [s for _, s in record[10:]]


def test_switch_hook_refuses_a_loop_that_cannot_train_subnets(workdir):
    with pytest.raises(ValueError, match=r"SubnetSwitchHook: .* "
                       r"train_cfg.type is 'EpochBasedTrainLoop', set "
                       r"train_cfg.type='SubnetEpochBasedTrainLoop'"):
        load_tool('train').main(['small.py', '--work-dir', 'wd_loop',
                                 '--cfg-options',
                                 'train_cfg.type=EpochBasedTrainLoop'])


def test_subnet_loop_needs_the_switch_hook(workdir):
    with pytest.raises(ValueError, match=r'SubnetEpochBasedTrainLoop: .* '
                       r'custom_hooks has 0 SubnetSwitchHook\(s\), needs '
                       r'exactly one'):
        load_tool('train').main(['small.py', '--work-dir', 'wd_hook',
                                 '--cfg-options', 'custom_hooks=[]'])


# --- DDP: 2 CPU processes (gloo) -------------------------------------------

@TASK_UTILS.register_module(force=True)
class WidthOnlySampler(SandwichSampler):
    """The sandwich rule without input scales, for a toy classifier."""

    def sample(self, rng, iteration, epoch):
        return [s._replace(scale=None)
                for s in super().sample(rng, iteration, epoch)]

    def default(self):
        return super().default()._replace(scale=None)


class Toy(BaseModel):
    """slimmable conv -> shared BN -> input-only conv; squared error."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = SlimmableConv2d(3, 16, 3, padding=1)
        self.bn = SlimmableBatchNorm2d(16)
        self.head = SlimmableConv2d(16, 4, 1, slim_out=False)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        y = self.head(torch.relu(self.bn(self.conv(inputs)))).mean((2, 3))
        return {'loss': ((y - data_samples)**2).mean()}


def toy_batch(rank, iteration):
    g = torch.Generator().manual_seed(100 * rank + iteration)
    return dict(inputs=torch.randn(2, 3, 8, 8, generator=g),
                data_samples=torch.randn(2, 4, generator=g))


def ddp_worker(rank, port, out):
    from mmengine.model import MMDistributedDataParallel
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=2)
    torch.set_num_threads(1)
    model = MMDistributedDataParallel(module=Toy())
    runner = SimpleNamespace(
        model=model, seed=17 + rank,  # as with diff_rank_seed: rank 0 wins
        train_loop=SubnetTrainLoop(),
        message_hub=MessageHub.get_instance(f'ddp_toy{rank}'),
        optim_wrapper=OptimWrapper(torch.optim.SGD(model.parameters(),
                                                   lr=0.1)))
    hook = SubnetSwitchHook(dict(type='WidthOnlySampler'), calib_images=0)
    hook.before_train(runner)
    sampled = []
    for it in range(3):
        runner.iter, runner.epoch = it, 0
        hook.before_train_iter(runner, it)
        sampled.append(hook.subnets)
        multi_subnet_train_step(model, toy_batch(rank, it),
                                runner.optim_wrapper, hook.subnets)
        hook.after_train_iter(runner, it)
    torch.save(dict(subnets=sampled, params=dict(
        model.module.named_parameters())), osp.join(out, f'{rank}.pt'))
    torch.distributed.barrier()  # neither rank tears gloo down early
    torch.distributed.destroy_process_group()


def test_ddp_ranks_sample_alike_and_train_like_one_process(tmp_path):
    """2 gloo processes with different seeds and data: the same sub-networks
    (rank 0's seed), no unused-parameter error for narrow widths, and the
    parameters of one process averaging both ranks' gradients."""
    import socket
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.spawn(ddp_worker, args=(port, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f'{r}.pt', weights_only=False)
             for r in (0, 1)]
    assert ranks[0]['subnets'] == ranks[1]['subnets']
    assert ranks[0]['subnets'] == [
        WidthOnlySampler().sample(iteration_rng(17, it), it, 0)
        for it in range(3)]
    ref = Toy()
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for it, subnets in enumerate(ranks[0]['subnets']):
        for subnet in subnets:
            set_subnet(ref, **subnet.settings)
            for rank in (0, 1):
                (ref(**toy_batch(rank, it))['loss'] / 2).backward()
        opt.step()
        opt.zero_grad()
    for name, param in ref.named_parameters():
        for r in ranks:
            torch.testing.assert_close(r['params'][name], param, msg=name)
