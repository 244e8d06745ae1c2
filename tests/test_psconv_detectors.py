"""The PSConv release's detectors (mmdet 1.x) in mmdet 3: mmdet 1.x's modules
and test procedure (the release fork's ``ResNet`` with ``PSConv2d``,
``FPN``, ``RPNHead``, ``SingleRoIExtractor`` + ``RoIAlign``,
``SharedFCBBoxHead``, ``FCNMaskHead``, ``simple_test`` of the two-stage and
cascade detectors) rebuilt here in plain torch from the fork's code, at
small widths with random weights, saved as mmdet 1.x saves a detector,
converted with tools/model_converters/psconv_detector_release.py and loaded
into the model of msdet's release config: at 800x1216 the backbone, FPN,
RPN and RoI head outputs are the same (float64), and the detections
(boxes, scores, labels, masks) of the release config's inference are 1.x's
(float32, up to the order of near-ties). The published models' shapes give
the release configs' models; bad sources are refused by name; the test
pipeline resizes and records the scale factor as 1.x."""
import copy
import os.path as osp
from argparse import Namespace

import cv2
import mmcv
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint

from msdet.models.converters import SourceDict, build_target
from test_converters import (DTYPE, ReleasePSConv, SrcResNet, convert,
                             load_tool, randomize)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BASE, CH, FC, CLASSES = 8, 16, 32, 5  # widths of the small detectors
STDS = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
        [0.033, 0.033, 0.067, 0.067])
KINDS = ('faster_rcnn', 'mask_rcnn', 'cascade_rcnn', 'cascade_mask_rcnn')
# 800x1216: a 600x912 image resized to (1333, 800), keeping its ratio.
IMG, ORI = (800, 1216), (600, 912)
SCALE = 800 / 600


# --------------------------------------------- mmdet 1.x modules (test-side)
class ConvModule(nn.Module):
    """1.x ``ConvModule`` without norm: ``conv`` (bias), optional ReLU."""

    def __init__(self, cin, cout, k, relu):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2)
        self.relu = relu

    def forward(self, x):
        x = self.conv(x)
        return F.relu(x) if self.relu else x


class FPN(nn.Module):
    """1.x ``FPN``: 1x1 laterals, top-down nearest x2 (``scale_factor``),
    3x3 outputs, P6 = max_pool2d(P5, 1, stride=2)."""

    def __init__(self, in_channels, out):
        super().__init__()
        self.lateral_convs = nn.ModuleList(
            ConvModule(c, out, 1, False) for c in in_channels)
        self.fpn_convs = nn.ModuleList(
            ConvModule(out, out, 3, False) for _ in in_channels)

    def forward(self, inputs):
        lat = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], scale_factor=2,
                                                    mode='nearest')
        outs = [conv(x) for conv, x in zip(self.fpn_convs, lat)]
        return outs + [F.max_pool2d(outs[-1], 1, stride=2)]


class RPNHead(nn.Module):
    def __init__(self, ch, anchors=3):
        super().__init__()
        self.rpn_conv = nn.Conv2d(ch, ch, 3, padding=1)
        self.rpn_cls = nn.Conv2d(ch, anchors, 1)
        self.rpn_reg = nn.Conv2d(ch, anchors * 4, 1)

    def forward(self, feats):
        outs = [F.relu(self.rpn_conv(x)) for x in feats]
        return ([self.rpn_cls(x) for x in outs],
                [self.rpn_reg(x) for x in outs])


class SharedFCBBoxHead(nn.Module):
    """1.x ``SharedFCBBoxHead`` (2 fcs): ``num_classes`` includes the
    background at index 0."""

    def __init__(self, ch, fc, num_classes, agnostic):
        super().__init__()
        self.shared_fcs = nn.ModuleList([nn.Linear(ch * 49, fc),
                                         nn.Linear(fc, fc)])
        self.fc_cls = nn.Linear(fc, num_classes)
        self.fc_reg = nn.Linear(fc, 4 if agnostic else 4 * num_classes)

    def forward(self, x):
        x = x.flatten(1)
        for fc in self.shared_fcs:
            x = F.relu(fc(x))
        return self.fc_cls(x), self.fc_reg(x)


class FCNMaskHead(nn.Module):
    def __init__(self, ch, num_classes, num_convs=4):
        super().__init__()
        self.convs = nn.ModuleList(ConvModule(ch, ch, 3, True)
                                   for _ in range(num_convs))
        self.upsample = nn.ConvTranspose2d(ch, ch, 2, stride=2)
        self.conv_logits = nn.Conv2d(ch, num_classes, 1)

    def forward(self, x):
        for conv in self.convs:
            x = conv(x)
        return self.conv_logits(F.relu(self.upsample(x)))


class V1Detector(nn.Module):
    """A 1.x Faster / Mask / Cascade (Mask) R-CNN with a PS-ResNet-50."""

    def __init__(self, kind, backbone=None, ch=CH, fc=FC, classes=CLASSES):
        """Default: the small test widths; ``backbone`` a ``SrcResNet``."""
        super().__init__()
        self.cascade, self.mask = 'cascade' in kind, 'mask' in kind
        self.backbone = backbone or SrcResNet(base=BASE, conv2=ReleasePSConv)
        del self.backbone.fc
        self.neck = FPN([self.backbone.conv1.out_channels * 4 * 2**i
                         for i in range(4)], ch)
        self.rpn_head = RPNHead(ch)
        k = classes + 1
        if self.cascade:
            self.bbox_head = nn.ModuleList(
                SharedFCBBoxHead(ch, fc, k, True) for _ in range(3))
            if self.mask:
                self.mask_head = nn.ModuleList(
                    FCNMaskHead(ch, k) for _ in range(3))
        else:
            self.bbox_head = SharedFCBBoxHead(ch, fc, k, False)
            if self.mask:
                self.mask_head = FCNMaskHead(ch, k)

    def feats(self, img):
        return self.neck(self.backbone(img))


def build_v1(kind):
    """``V1Detector(kind)`` with seeded default biases (``randomize``
    draws the weights), whatever ran before."""
    with torch.random.fork_rng():
        torch.manual_seed(KINDS.index(kind))
        return V1Detector(kind)


@torch.no_grad()
def scale_output(layer, x, std):
    """Scale ``layer`` so that its outputs on ``x`` have spread ``std``."""
    factor = std / layer(x).std()
    layer.weight.mul_(factor)
    layer.bias.mul_(factor)


@torch.no_grad()
def make_source(kind, shared):
    """Random 1.x detector of ``kind`` with the backbone, FPN and RPN of
    ``shared`` (a ``V1Detector``), its outputs spread as a trained one's:
    RPN logits ~2 and deltas ~0.2, R-CNN logits ~3 and deltas ~0.5 (boxes
    of sensible sizes, scores above the 0.05 threshold, no ties at 1.0)."""
    det = randomize(build_v1(kind), seed=KINDS.index(kind))
    for name in ('backbone', 'neck', 'rpn_head'):
        getattr(det, name).load_state_dict(
            getattr(shared, name).state_dict())
    g = torch.Generator().manual_seed(0)
    feats = det.feats(torch.randn(1, 3, 128, 192, dtype=DTYPE, generator=g))
    x = F.relu(det.rpn_head.rpn_conv(feats[0]))
    scale_output(det.rpn_head.rpn_cls, x, 2.0)
    scale_output(det.rpn_head.rpn_reg, x, 0.2)
    rois = torch.tensor([[0., 8, 8, 60, 90], [0, 30, 20, 150, 100]] * 8,
                        dtype=DTYPE)
    x = roi_extract_1x(feats[:4], rois, 7).flatten(1)
    heads = det.bbox_head if det.cascade else [det.bbox_head]
    for head in heads:
        y = F.relu(head.shared_fcs[1](F.relu(head.shared_fcs[0](x))))
        scale_output(head.fc_cls, y, 3.0)
        scale_output(head.fc_reg, y, 0.5)
    return det


# ------------------------------------------- mmdet 1.x test procedure
def anchors_1x(sizes, strides=(4, 8, 16, 32, 64), scale=8,
               ratios=(0.5, 1.0, 2.0)):
    """``AnchorGenerator.gen_base_anchors`` + ``grid_anchors``."""
    out = []
    for (h, w), s in zip(sizes, strides):
        r = torch.tensor(ratios)
        hr = r.sqrt()
        ws, hs = s / hr * scale, s * hr * scale
        c = 0.5 * (s - 1)
        base = torch.stack([c - 0.5 * (ws - 1), c - 0.5 * (hs - 1),
                            c + 0.5 * (ws - 1), c + 0.5 * (hs - 1)],
                           -1).round()
        sx, sy = torch.arange(w) * s, torch.arange(h) * s
        yy, xx = torch.meshgrid(sy, sx, indexing='ij')
        shifts = torch.stack([xx, yy, xx, yy], -1).reshape(-1, 1, 4)
        out.append((base[None] + shifts).reshape(-1, 4))
    return out


def delta2bbox_1x(rois, deltas, stds, max_shape):
    """mmdet 1.0rc0 ``delta2bbox`` (means 0)."""
    d = deltas * torch.tensor(stds, dtype=deltas.dtype).repeat(
        deltas.size(1) // 4)
    dx, dy, dw, dh = d[:, 0::4], d[:, 1::4], d[:, 2::4], d[:, 3::4]
    clip = abs(np.log(16 / 1000))
    dw, dh = dw.clamp(-clip, clip), dh.clamp(-clip, clip)
    px = ((rois[:, 0] + rois[:, 2]) * 0.5)[:, None]
    py = ((rois[:, 1] + rois[:, 3]) * 0.5)[:, None]
    pw = (rois[:, 2] - rois[:, 0] + 1.0)[:, None]
    ph = (rois[:, 3] - rois[:, 1] + 1.0)[:, None]
    gw, gh = pw * dw.exp(), ph * dh.exp()
    gx, gy = px + pw * dx, py + ph * dy
    x1 = (gx - gw * 0.5 + 0.5).clamp(0, max_shape[1] - 1)
    y1 = (gy - gh * 0.5 + 0.5).clamp(0, max_shape[0] - 1)
    x2 = (gx + gw * 0.5 - 0.5).clamp(0, max_shape[1] - 1)
    y2 = (gy + gh * 0.5 - 0.5).clamp(0, max_shape[0] - 1)
    return torch.stack([x1, y1, x2, y2], -1).view_as(deltas)


def nms_1x(boxes, scores, thr):
    """Greedy NMS with 1.x's inclusive areas; kept indices, by score."""
    order = scores.argsort(descending=True)
    b = boxes[order]
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt + 1).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    iou = inter / (area[:, None] + area[None] - inter)
    keep, removed = [], torch.zeros(len(b), dtype=torch.bool)
    for i in range(len(b)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= iou[i] > thr
    return order[keep]


def roi_align_1x(feat, rois, out, scale, sample=2):
    """The fork's ``ROIAlignForward`` kernel (batch of one image)."""
    c, h, w = feat.shape[1:]
    x1, y1 = rois[:, 1] * scale, rois[:, 2] * scale
    rw = ((rois[:, 3] + 1) * scale - x1).clamp(min=0)
    rh = ((rois[:, 4] + 1) * scale - y1).clamp(min=0)
    grid = (torch.arange(out)[:, None] +
            (torch.arange(sample)[None] + 0.5) / sample).reshape(-1)
    ys = y1[:, None] + grid.to(feat) * (rh / out)[:, None]
    xs = x1[:, None] + grid.to(feat) * (rw / out)[:, None]

    def axis(v, size):
        valid = (v >= -1) & (v <= size)
        v = v.clamp(min=0)
        low = v.long()
        edge = low >= size - 1
        low = torch.where(edge, size - 1, low)
        high = torch.where(edge, size - 1, low + 1)
        frac = torch.where(edge, torch.zeros_like(v), v - low)
        return low, high, frac, valid

    yl, yh, ly, vy = axis(ys, h)
    xl, xh, lx, vx = axis(xs, w)
    f = feat[0]

    def at(yi, xi):  # (C, n, P, P)
        return f[:, yi[:, :, None], xi[:, None, :]]

    wy, wx = ly[:, :, None], lx[:, None, :]
    val = ((1 - wy) * (1 - wx) * at(yl, xl) + (1 - wy) * wx * at(yl, xh) +
           wy * (1 - wx) * at(yh, xl) + wy * wx * at(yh, xh))
    val = val * (vy[:, :, None] & vx[:, None, :])
    n = len(rois)
    val = val.reshape(c, n, out, sample, out, sample).sum((3, 5))
    return (val / sample**2).permute(1, 0, 2, 3)


def roi_extract_1x(feats, rois, out):
    """1.x ``SingleRoIExtractor``: level from sqrt((x2-x1+1)(y2-y1+1))."""
    scale = ((rois[:, 3] - rois[:, 1] + 1) *
             (rois[:, 4] - rois[:, 2] + 1)).sqrt()
    lvl = torch.floor(torch.log2(scale / 56 + 1e-6)).clamp(0, 3).long()
    res = feats[0].new_zeros(len(rois), feats[0].shape[1], out, out)
    for i in range(4):
        if (lvl == i).any():
            res[lvl == i] = roi_align_1x(feats[i], rois[lvl == i], out,
                                         1 / 2**(i + 2))
    return res


def proposals_1x(det, feats):
    """1.x ``RPNHead.get_bboxes_single`` (nms_pre / nms_post / max_num
    1000, IoU 0.7, no min size, no NMS across levels)."""
    cls, reg = det.rpn_head(feats)
    anchors = anchors_1x([c.shape[-2:] for c in cls])
    props = []
    for c, r, a in zip(cls, reg, anchors):
        scores = c[0].permute(1, 2, 0).reshape(-1).sigmoid()
        deltas = r[0].permute(1, 2, 0).reshape(-1, 4)
        if len(scores) > 1000:
            scores, idx = scores.topk(1000)
            deltas, a = deltas[idx], a[idx]
        boxes = delta2bbox_1x(a.to(deltas), deltas, [1.] * 4, IMG)
        keep = nms_1x(boxes, scores, 0.7)[:1000]
        props.append(torch.cat([boxes[keep], scores[keep, None]], 1))
    props = torch.cat(props)
    return props[props[:, 4].topk(min(1000, len(props)))[1]]


def multiclass_nms_1x(bboxes, scores, score_thr=0.05, thr=0.5, max_num=100):
    dets, labels = [], []
    for i in range(1, scores.shape[1]):
        inds = scores[:, i] > score_thr
        if not inds.any():
            continue
        b = bboxes[inds] if bboxes.shape[1] == 4 else \
            bboxes[inds, i * 4:(i + 1) * 4]
        s = scores[inds, i]
        keep = nms_1x(b, s, thr)
        dets.append(torch.cat([b[keep], s[keep, None]], 1))
        labels.append(torch.full((len(keep), ), i - 1))
    dets, labels = torch.cat(dets), torch.cat(labels)
    if len(dets) > max_num:
        order = dets[:, 4].argsort(descending=True)[:max_num]
        dets, labels = dets[order], labels[order]
    return dets, labels


def seg_masks_1x(probs, resized_boxes, labels, thr=0.5):
    """1.x ``FCNMaskHead.get_seg_masks`` (rescale=True); ``probs`` with the
    background channel at 0."""
    probs = probs.float().numpy()
    boxes = (resized_boxes.float().numpy() / SCALE).astype(np.int32)
    masks = np.zeros((len(boxes), *ORI), dtype=bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        m = cv2.resize(probs[i, labels[i] + 1], (int(w), int(h)),
                       interpolation=cv2.INTER_LINEAR)
        masks[i, y1:y1 + h, x1:x1 + w] = m > thr
    return masks


def simple_test_1x(det, img):
    """1.x ``TwoStageDetector`` / ``CascadeRCNN.simple_test`` (rescale)."""
    feats = det.feats(img)
    props = proposals_1x(det, feats)
    rois = torch.cat([props.new_zeros(len(props), 1), props[:, :4]], 1)
    heads = det.bbox_head if det.cascade else [det.bbox_head]
    stds = STDS if det.cascade else STDS[:1]
    scores = []
    for i, (head, std) in enumerate(zip(heads, stds)):
        cls, reg = head(roi_extract_1x(feats[:4], rois, 7))
        scores.append(cls)
        if i < len(heads) - 1:  # regress_by_class (class-agnostic)
            rois = torch.cat([rois[:, :1],
                              delta2bbox_1x(rois[:, 1:], reg, std, IMG)], 1)
    probs = F.softmax(sum(scores) / len(scores), 1)
    boxes = delta2bbox_1x(rois[:, 1:], reg, stds[-1], IMG) / SCALE
    dets, labels = multiclass_nms_1x(boxes, probs)
    if not det.mask:
        return dets, labels, None
    resized = dets[:, :4] * SCALE
    mask_rois = torch.cat([resized.new_zeros(len(resized), 1), resized], 1)
    mheads = det.mask_head if det.cascade else [det.mask_head]
    mprobs = sum(h(roi_extract_1x(feats[:4], mask_rois, 14)).sigmoid()
                 for h in mheads) / len(mheads)
    return dets, labels, seg_masks_1x(mprobs, resized, labels)


# ----------------------------------------------------------------- tests
@pytest.fixture(scope='module')
def shared():
    """The backbone, FPN and RPN every source shares, and their outputs on
    an 800x1216 image (float64)."""
    det = randomize(build_v1('faster_rcnn'))
    img = torch.randn(1, 3, *IMG, dtype=DTYPE,
                      generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        stages = det.backbone(img)
        feats = det.neck(stages)
    return det, img, stages, feats


@pytest.fixture(scope='module', params=KINDS)
def converted(request, shared, tmp_path_factory):
    """A 1.x detector saved as mmdet 1.x saves it, converted, and loaded
    into its release config's model (float64)."""
    kind = request.param
    root = tmp_path_factory.mktemp(kind)
    src = make_source(kind, shared[0])
    path = str(root / f'{kind}_r50_fpn_1x.pth')
    torch.save({'meta': dict(mmdet_version='1.0rc0+713e98b', epoch=12,
                             CLASSES=tuple(f'c{i}' for i in range(CLASSES))),
                'state_dict': src.state_dict()}, path)
    meta = convert('psconv_detector_release', path, root / 'converted.pth')
    model = build_target(meta['model'], 'mmdet').to(DTYPE).eval()
    load_checkpoint(model, str(root / 'converted.pth'), strict=True,
                    logger='silent')
    return kind, src, model, meta


def test_converted_config_is_the_release_config(converted):
    """The converted model is the release config's (its V1 components and
    test settings), at the source's widths."""
    kind, _, _, meta = converted
    cfg = meta['model']
    release = Config.fromfile(osp.join(
        REPO, f'configs/psconv/{kind}_psr50_fpn_1x_release.py')).model
    assert meta['equivalence']['kind'] == 'exact'
    assert meta['dropped'] == [] and meta['notes'] == []
    assert cfg['test_cfg'] == release.test_cfg.to_dict()
    assert cfg['rpn_head']['anchor_generator'] == \
        release.rpn_head.anchor_generator.to_dict()
    assert cfg['backbone'] == dict(release.backbone.to_dict(),
                                   base_channels=BASE)
    assert cfg['neck']['in_channels'] == [32, 64, 128, 256]
    roi = cfg['roi_head']
    assert roi['type'] == release.roi_head.type
    assert roi['bbox_roi_extractor']['roi_layer'] == dict(
        type='RoIAlign', output_size=7, sampling_ratio=2, aligned=False)
    heads = roi['bbox_head'] if 'cascade' in kind else [roi['bbox_head']]
    for head in heads:
        assert (head['num_classes'], head['fc_out_channels']) == (CLASSES, FC)
        assert head['reg_class_agnostic'] == ('cascade' in kind)
        assert head['bbox_coder']['type'] == 'V1DeltaXYWHBBoxCoder'
    if 'mask' in kind:
        assert roi['mask_head']['type'] == 'V1FCNMaskHead'


@pytest.mark.parametrize('converted', ['mask_rcnn'], indirect=True)
def test_backbone_fpn_rpn_outputs_equal_the_release(shared, converted):
    """At 800x1216, float64: the four backbone stages, the five FPN
    levels, the RPN's class and box maps (one detector kind: these parts
    convert alike in all)."""
    _, src, model, _ = converted
    _, img, stages, feats = shared
    close = dict(rtol=1e-7, atol=1e-7)
    with torch.no_grad():
        got = model.backbone(img)
        for a, b in zip(got, stages):
            torch.testing.assert_close(a, b, **close)
        got = model.neck(got)
        assert len(got) == len(feats) == 5
        for a, b in zip(got, feats):
            torch.testing.assert_close(a, b, **close)
        for a, b in zip(model.rpn_head(got), src.rpn_head(feats)):
            for x, y in zip(a, b):
                torch.testing.assert_close(x, y, **close)


def test_roi_head_outputs_equal_the_release(shared, converted):
    """On the FPN levels of an 800x1216 image, float64: RoI features (1.x's
    levels and RoIAlign regions) of RoIs of every level down to 3 px wide
    (the thinnest that mmcv's RoIAlign takes as 1.x's at stride 4), and the
    R-CNN heads' outputs on them, the background moved / dropped."""
    kind, src, model, _ = converted
    feats = shared[3][:4]
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(200, 2, generator=g, dtype=DTYPE) * \
        torch.tensor([1100., 700.], dtype=DTYPE)
    wh = 2**(torch.rand(200, 2, generator=g, dtype=DTYPE) * 8 + 1.6)
    rois = torch.cat([torch.zeros(200, 1, dtype=DTYPE), xy, xy + wh], 1)
    roi = model.roi_head
    cascade = 'cascade' in kind

    def stage(modules, s):
        return modules[s] if cascade else modules

    with torch.no_grad():
        for s in range(3) if cascade else [0]:
            x = stage(roi.bbox_roi_extractor, s)(feats, rois)
            torch.testing.assert_close(x, roi_extract_1x(feats, rois, 7),
                                       rtol=1e-7, atol=1e-7)
            cls, reg = stage(roi.bbox_head, s)(x)
            cls1, reg1 = stage(src.bbox_head, s)(x)
            torch.testing.assert_close(cls, torch.cat([cls1[:, 1:],
                                                       cls1[:, :1]], 1))
            torch.testing.assert_close(reg, reg1 if cascade else reg1[:, 4:])
            if 'mask' in kind:
                x = stage(roi.mask_roi_extractor, s)(feats, rois)
                torch.testing.assert_close(
                    x, roi_extract_1x(feats, rois, 14), rtol=1e-7,
                    atol=1e-7)
                torch.testing.assert_close(stage(roi.mask_head, s)(x),
                                           stage(src.mask_head, s)(x)[:, 1:])


@pytest.mark.parametrize('converted', ['mask_rcnn', 'cascade_mask_rcnn'],
                         indirect=True)
def test_detections_equal_the_release(shared, converted):
    """The release config's inference (model.predict, rescale) on an image
    resized 600x912 -> 800x1216 gives 1.x's ``simple_test`` detections
    (float32; boxes in mmdet 3's convention: 1.x's x2, y2 + 1; masks
    pasted as 1.x). Mask R-CNN and Cascade Mask R-CNN: every step of the
    other two kinds is one of theirs."""
    _, src, model, _ = converted
    src, model = copy.deepcopy(src).float(), copy.deepcopy(model).float()
    img = shared[1].float()
    sample = DetDataSample(metainfo=dict(
        img_shape=IMG, ori_shape=ORI, pad_shape=IMG, batch_input_shape=IMG,
        scale_factor=(SCALE, SCALE)))
    with torch.no_grad():
        dets, labels, masks = simple_test_1x(src, img)
        pred = model.predict(img, [sample], rescale=True)[0].pred_instances
    assert 20 <= len(dets) <= 100 and len(pred) == len(dets)
    ref, got = match_detections(dets, labels, pred)
    assert len(ref) >= len(dets) - 2
    want = dets[ref, :4] + torch.tensor([0., 0., 1., 1.])
    torch.testing.assert_close(pred.bboxes[got], want, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(pred.scores[got], dets[ref, 4])
    assert torch.equal(pred.labels[got], labels[ref])
    if masks is not None:
        mine = pred.masks[got].numpy()
        assert mine.shape == (len(ref), *ORI) and mine.any()
        # corners truncated to ints: a float rounding at an integer would
        # move a mask by a pixel (none expected here)
        assert (mine != masks[ref.numpy()]).mean() < 1e-4


def match_detections(dets, labels, pred, tol=1e-5):
    """Index pairs (1.x, model) of the same detections: same label, scores
    within ``tol``, the nearest box. In float32 two detections whose scores
    differ by less than ``tol`` may come in either order, and one scoring
    within ``tol`` of the 100th may be cut in place of the other: such
    detections (only) may stay unpaired."""
    order = dets[:, 4].argsort(descending=True)
    cut = dets[order[-1], 4] if len(dets) == 100 else -1.
    used = torch.zeros(len(pred), dtype=torch.bool)
    ref, got = [], []
    for i in order.tolist():
        cand = (~used & (pred.labels == labels[i]) &
                ((pred.scores - dets[i, 4]).abs() <= tol)).nonzero()[:, 0]
        if len(cand) == 0:
            assert dets[i, 4] - cut <= tol, f'1.x detection {i} not found'
            continue
        dist = (pred.bboxes[cand] - dets[i, :4]).abs().max(1).values
        j = cand[dist.argmin()].item()
        used[j] = True
        ref.append(i)
        got.append(j)
    return torch.tensor(ref), torch.tensor(got)


def test_bad_sources_are_refused_by_name(tmp_path):
    """A backbone-only checkpoint, a box head whose regression rows fit
    neither layout, an RoI size that is not square, a key the detector
    lacks: one message naming it (the command line's exit), nothing
    written."""
    base = build_v1('faster_rcnn').state_dict()
    dst = tmp_path / 'out.pth'

    def refused(state, match):
        path = tmp_path / 'src.pth'
        torch.save({'meta': {}, 'state_dict': state}, path)
        with pytest.raises(SystemExit, match=match):
            convert('psconv_detector_release', path, dst)
        assert not dst.exists()

    refused({k: v for k, v in base.items() if k.startswith('backbone.')},
            r"no 'rpn_head.rpn_cls.weight'.*psconv_release.py")
    refused(dict(base, **{'bbox_head.fc_reg.weight': torch.zeros(8, FC),
                          'bbox_head.fc_reg.bias': torch.zeros(8)}),
            r'bbox_head.fc_reg.weight has 8 rows; 1.x has 4 or 4 x 6')
    refused(dict(base, **{'bbox_head.shared_fcs.0.weight':
                          torch.zeros(FC, CH * 50)}),
            r'bbox_head.shared_fcs.0.weight takes 800 inputs')
    refused(dict(base, **{'semantic_head.conv.weight': torch.zeros(1)}),
            r'semantic_head.conv.weight')


B101 = dict(blocks=(3, 4, 23, 3))


@pytest.mark.parametrize('kind,arch,backbone', [
    ('faster_rcnn', 'psr50', {}),
    ('mask_rcnn', 'psr101', B101),
    ('cascade_mask_rcnn', 'psx101_32x4d', dict(B101, groups=32,
                                               base_width=4)),
], ids=['faster_rcnn_psr50', 'mask_rcnn_psr101', 'cascade_mask_rcnn_psx101'])
def test_published_shapes_give_the_release_configs(kind, arch, backbone):
    """A published model's shapes (PS-ResNet-50/101 or PS-ResNeXt-101
    32x4d, FPN 256, 1024-wide box heads, 81 classes; on the meta device)
    convert to exactly the model of the release config of its kind and
    backbone, which the converter then names (it names a config only if
    the model is that config's)."""
    tool = load_tool('model_converters/psconv_detector_release')
    with torch.device('meta'):
        det = V1Detector(kind, SrcResNet(base=64, conv2=ReleasePSConv,
                                         **backbone), 256, 1024, 80)
    cfg = tool.target_cfg(SourceDict(det.state_dict()),
                          Namespace(zero_masked_blocks=False))
    config = f'configs/psconv/{kind}_{arch}_fpn_1x_release.py'
    assert tool.usage(cfg, 'dst.pth') == \
        f'use: python tools/test.py {config} dst.pth'


def test_release_test_pipeline_resizes_as_1x(tmp_path):
    """The release configs' test pipeline on a 600x901 image: 1.x's
    ``mmcv.imrescale`` image and its scale factor ``s`` on both axes
    (V1Resize), where mmdet's Resize records the realised ratios
    (1201 / 901 != 4 / 3)."""
    img = np.random.RandomState(0).randint(0, 256, (600, 901, 3)).astype(
        np.uint8)
    cv2.imwrite(str(tmp_path / 'img.png'), img)
    cfg = Config.fromfile(osp.join(
        REPO, 'configs/psconv/faster_rcnn_psr50_fpn_1x_release.py'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        pipeline = Compose(cfg.test_pipeline)
        data = pipeline(dict(img_path=str(tmp_path / 'img.png'), img_id=0,
                             instances=[]))
    want, s = mmcv.imrescale(img, (1333, 800), return_scale=True)
    meta = data['data_samples'].metainfo
    assert meta['img_shape'] == want.shape[:2] == (800, 1201)
    assert meta['scale_factor'] == (s, s) == (4 / 3, 4 / 3)
    assert torch.equal(data['inputs'],
                       torch.from_numpy(want).permute(2, 0, 1))
