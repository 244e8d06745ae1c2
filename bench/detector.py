"""One Mask R-CNN (FPN) training iteration per backbone on a synthetic batch:
time (interleaved with its baseline's detector) and peak memory."""
import copy
import functools
import os.path as osp

import numpy as np
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from . import backbones
from .memory import peak_mib
from .timing import measure

#: mmdet's Mask R-CNN R50-FPN 1x (through msdet's main config).
CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs',
                  'mask_rcnn_psr50_fpn_1x.py')
#: ResNet-family backbones as mmdet fine-tunes them (frozen stem + stage 1,
#: BN statistics frozen); VGG as msdet's MutualNet config trains it.
RESNET_DEFAULTS = dict(frozen_stages=1, norm_eval=True, style='pytorch')
VGG_DEFAULTS = dict(out_indices=(1, 2, 3, 4), frozen_stages=-1,
                    norm_eval=False)
#: ``--quick``: FPN and heads 8x narrower (a smoke test, not a measurement).
QUICK_WIDTH = 32


@functools.lru_cache()
def _model_cfg():
    return Config.fromfile(CONFIG).model


def _narrow(cfg, width):
    """FPN, RPN and RoI heads of ``cfg`` at ``width`` channels, fewer
    proposals and sampled RoIs."""
    cfg.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    cfg.train_cfg.rcnn.sampler.num = 64
    cfg.neck.out_channels = width
    cfg.rpn_head.update(in_channels=width, feat_channels=width)
    roi = cfg.roi_head
    roi.bbox_roi_extractor.out_channels = width
    roi.bbox_head.update(in_channels=width, fc_out_channels=2 * width)
    roi.mask_roi_extractor.out_channels = width
    roi.mask_head.update(in_channels=width, conv_out_channels=width)


def build_detector(spec, quick, device):
    """Mask R-CNN whose backbone is ``spec``'s (random init, train mode)."""
    model_cfg = copy.deepcopy(_model_cfg())
    vgg = spec.cfg['type'] == 'SlimmableVGG'
    overrides = dict(VGG_DEFAULTS if vgg else RESNET_DEFAULTS)
    if spec.cfg['type'] == 'ResizableResNet':
        overrides['restore_outputs'] = True
    full = spec._replace(settings={})
    with torch.no_grad():
        channels = [
            o.shape[1] for o in backbones.build(full, quick, **overrides)(
                torch.zeros(1, 3, 64, 64))
        ]
    model_cfg.backbone = dict(spec.cfg, init_cfg=None, **overrides,
                              **(spec.quick if quick else {}))
    model_cfg.neck.in_channels = channels
    if vgg:  # narrow widths feed the full-width FPN (sliced lateral convs)
        model_cfg.neck.conv_cfg = dict(type='SlimmableConv2d', slim_out=False)
    if quick:
        _narrow(model_cfg, QUICK_WIDTH)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(model_cfg)
    if spec.form is not None:
        model.backbone = spec.form(model.backbone)
    if spec.settings:
        backbones.set_subnet(model, **spec.settings)
    model.to(device).train()
    return model


def synthetic_batch(batch, height, width, device, boxes=8, seed=0):
    """Normalised images and ``DetDataSample``s with random boxes, labels
    and rectangular masks (what ``model.loss`` takes after the
    preprocessor)."""
    rng = np.random.default_rng(seed)
    inputs = torch.from_numpy(
        rng.standard_normal((batch, 3, height, width), dtype=np.float32))
    samples = []
    for _ in range(batch):
        wh = rng.uniform(0.1, 0.4, (boxes, 2)) * (width, height)
        xy = rng.uniform(0, 1, (boxes, 2)) * ((width, height) - wh)
        xyxy = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        masks = np.zeros((boxes, height, width), np.uint8)
        for m, (x1, y1, x2, y2) in zip(masks, xyxy.astype(int)):
            m[y1:y2, x1:x2] = 1
        sample = DetDataSample(metainfo=dict(
            img_shape=(height, width), pad_shape=(height, width),
            batch_input_shape=(height, width), ori_shape=(height, width),
            scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=torch.from_numpy(xyxy).to(device),
            labels=torch.from_numpy(rng.integers(0, 80, boxes)).to(device),
            masks=BitmapMasks(masks, height, width))
        samples.append(sample)
    return inputs.to(device), samples


def _iteration(model, batch):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.parse_losses(model.loss(*batch))
        loss.backward()
        optimizer.step()

    return step


def run(specs, quick, reps, device, size, batch_size):
    """Per backbone: peak memory of a training iteration (after a first,
    untimed one), then its iteration time interleaved with its baseline's
    (ratio to it). ``specs`` lists every baseline before the backbones
    timed against it (``backbones.SPECS`` order)."""
    batch = synthetic_batch(batch_size, *size, device)
    rows, baselines = [], {}
    for spec in specs:
        model = build_detector(spec, quick, device)
        step = _iteration(model, batch)
        step()  # one-time allocations (oneDNN primitives, momentum buffers)
        peak = peak_mib(step, device)
        if spec.name == spec.baseline:
            baselines[spec.name] = (model, step, peak)
            row = dict(name=spec.name, baseline=spec.name, ratio=1.0,
                       peak_mib=peak, peak_ratio=1.0)
        else:
            _, base_step, base_peak = baselines[spec.baseline]
            res = measure({spec.name: step, spec.baseline: base_step},
                          spec.baseline, reps, warmup=0, device=device)
            row = dict(
                name=spec.name, baseline=spec.baseline,
                ms=round(res[spec.name]['ms'], 1),
                baseline_ms=round(res[spec.baseline]['ms'], 1),
                ratio=round(res[spec.name]['ratio'], 4),
                times_ms=res[spec.name]['times_ms'],
                baseline_times_ms=res[spec.baseline]['times_ms'],
                peak_mib=peak,
                peak_ratio=(None if peak is None or base_peak is None else
                            round(peak / base_peak, 4)))
        rows.append(row)
        print(f"[detector] {spec.name}: peak {peak} MiB, "
              f"x{row.get('ratio', 1.0)} time", flush=True)
        del model, step
    return rows
