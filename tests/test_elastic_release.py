"""The ELASTIC release's SE-ResNeXt-50 + Elastic (table 2) and DeepLabv3 VOC
(table 5) checkpoints: the release's layout rebuilt here in plain torch as
its ``models/resnext.py`` describes it (small widths, random weights),
saved as the release saves it, converted with tools/model_converters/, and
compared with the msdet model: the same outputs at 224 (classifier
backbone) and the same logits at 513x513 (segmentor), also through the VOC
configs' evaluation pipeline. Also the recipe's data transforms."""
import copy
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from PIL import Image

from msdet.models.backbones import ElasticResNeXt
from msdet.models.converters import build_target
from test_converters import (DTYPE, assert_same_outputs, convert,
                             load_pretrained, randomize, save_source)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
VOC_CFG = osp.join(REPO, 'configs/elastic/'
                   'deeplabv3_ex50_32x4d_os16_voc12aug_release.py')
ELASTIC50, PLAIN50 = (6, 8, 5, 3), (3, 4, 6, 3)


# ------------------------------------------------ the release (test-side)
class ReleaseSE(nn.Module):
    """``Selayer``: global average pool, 1x1 conv to C // 16 (bias), ReLU,
    1x1 conv back (bias), sigmoid; rescales the input's channels."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels // 16, 1)
        self.conv2 = nn.Conv2d(channels // 16, channels, 1)

    def forward(self, x):
        w = F.relu(self.conv1(F.adaptive_avg_pool2d(x, 1)))
        return x * torch.sigmoid(self.conv2(w))


class ReleaseBottleneckX(nn.Module):
    """``BottleneckX``: two halves of ``planes`` channels and
    ``cardinality // 2`` paths each, always both built; the ``_d`` half
    pooled / upsampled only where Elastic (stride 1, planes < 512);
    conv3 outputs summed, ``bn3``, optional ``selayer``, residual."""

    def __init__(self, inplanes, planes, cardinality, stride=1,
                 downsample=None, dilation=1, elastic=False, se=False):
        super().__init__()
        self.elastic = elastic and stride == 1
        for s in ('_d', ''):
            self.add_module('conv1' + s, nn.Conv2d(inplanes, planes, 1,
                                                   bias=False))
            self.add_module('bn1' + s, nn.BatchNorm2d(planes))
            self.add_module('conv2' + s, nn.Conv2d(
                planes, planes, 3, stride, dilation, dilation,
                groups=cardinality // 2, bias=False))
            self.add_module('bn2' + s, nn.BatchNorm2d(planes))
            self.add_module('conv3' + s, nn.Conv2d(planes, planes * 4, 1,
                                                   bias=False))
        self.bn3 = nn.BatchNorm2d(planes * 4)
        if se:
            self.selayer = ReleaseSE(planes * 4)
        self.se, self.downsample = se, downsample

    def half(self, x, s=''):
        def m(name):
            return getattr(self, name + s)
        x = F.relu(m('bn1')(m('conv1')(x)))
        x = F.relu(m('bn2')(m('conv2')(x)))
        return m('conv3')(x)

    def forward(self, x):
        h, w = x.shape[-2:]
        if self.elastic:
            low = F.avg_pool2d(F.pad(x, (0, w % 2, 0, h % 2),
                                     mode='replicate'), 2, 2)
            low = F.interpolate(self.half(low, '_d'), scale_factor=2,
                                mode='bilinear', align_corners=False)
            low = low[:, :, :h, :w]
        else:
            low = self.half(x, '_d')
        out = self.bn3(self.half(x) + low)
        if self.se:
            out = self.selayer(out)
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(out + res)


class ReleaseASPP(nn.Module):
    """``ASPP``: ``aspp1`` (1x1), ``aspp2..4`` (3x3 at 6, 12, 18),
    ``aspp5`` (1x1 on the global average, upsampled), each + BN + ReLU;
    concatenated in that order -> ``conv2`` 1x1 + ``bn2`` + ReLU ->
    ``conv3`` (classifier with bias)."""

    def __init__(self, channels, depth, num_classes):
        super().__init__()
        for i, rate in enumerate((0, 6, 12, 18, 0)):
            self.add_module(f'aspp{i + 1}', nn.Conv2d(
                channels, depth, 3 if rate else 1, padding=rate,
                dilation=rate or 1, bias=False))
            self.add_module(f'aspp{i + 1}_bn', nn.BatchNorm2d(depth))
        self.conv2 = nn.Conv2d(depth * 5, depth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(depth)
        self.conv3 = nn.Conv2d(depth, num_classes, 1)

    def forward(self, x):
        outs = []
        for i in range(1, 6):
            y = F.adaptive_avg_pool2d(x, 1) if i == 5 else x
            y = F.relu(getattr(self, f'aspp{i}_bn')(
                getattr(self, f'aspp{i}')(y)))
            outs.append(F.interpolate(y, x.shape[-2:], mode='bilinear',
                                      align_corners=True))
        return self.conv3(F.relu(self.bn2(self.conv2(torch.cat(outs, 1)))))


#: 1/4 of the release's widths (planes 16 per half, 4 paths: 2 per half).
SCALE, CARDINALITY = 1 / 4, 4


class ReleaseResNext(nn.Module):
    """``ResNext``: stem, stages of ``BottleneckX`` (``layers``); with
    ``seg`` the last stage at stride 1, rates 2 x (1, 2, 4) (``_make_mg``)
    and ``aspp``, logits upsampled to the input (align_corners=True);
    without, ``forward`` returns the four stage outputs."""

    def __init__(self, layers, elastic, se=False, seg=False, depth=32,
                 num_classes=21):
        super().__init__()
        base = int(64 * SCALE)
        self.seg = seg
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        inplanes = base
        for i, n in enumerate(layers):
            planes = base * 2**i
            last = i == 3
            stride = 1 if i == 0 or (seg and last) else 2
            rates = (2, 4, 8) if seg and last else (1, ) * n
            down = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                nn.BatchNorm2d(planes * 4))
            blocks = []
            for j in range(n):
                blocks.append(ReleaseBottleneckX(
                    inplanes, planes, CARDINALITY, stride if j == 0 else 1,
                    down if j == 0 else None, rates[j],
                    elastic=elastic and not last, se=se))
                inplanes = planes * 4
            self.add_module(f'layer{i + 1}', nn.Sequential(*blocks))
        if seg:
            self.aspp = ReleaseASPP(inplanes, depth, num_classes)
        else:
            self.fc = nn.Linear(inplanes, 10)

    def forward(self, x):
        size = x.shape[-2:]
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        outs = []
        for i in range(1, 5):
            x = getattr(self, f'layer{i}')(x)
            outs.append(x)
        if not self.seg:
            return outs
        return F.interpolate(self.aspp(x), size, mode='bilinear',
                             align_corners=True)


# ------------------------------------------------------- SE-ResNeXt-50 + E
def test_se_elastic_size_matches_table_2():
    """SE-ResNeXt-50 + Elastic: 27.8M parameters with the classifier."""
    m = ElasticResNeXt(depth=50, se=True)
    params = sum(p.numel() for p in m.parameters()) + 2048 * 1000 + 1000
    assert abs(params / 27.8e6 - 1) < 0.005
    assert m.layer4[2].se_layer.conv1.conv.out_channels == 2048 // 16


@pytest.mark.parametrize('layers,elastic', [(ELASTIC50, True),
                                            (PLAIN50, False)],
                         ids=['se_resnext50_elastic', 'se_resnext50'])
def test_se_release_converts_exactly(tmp_path, layers, elastic):
    src = randomize(ReleaseResNext(layers, elastic, se=True))
    path = save_source(src, tmp_path / 'release.pth', prefix='module.')
    meta = convert('elastic_release', path, tmp_path / 'se.pth')
    want = dict(type='ElasticResNeXt', depth=50, groups=4, base_width=8,
                base_channels=16, se=True)
    if not elastic:
        want['elastic'] = False
    assert meta['backbone'] == want
    assert meta['equivalence']['kind'] == ('exact' if elastic else
                                           'conditional')
    dst = load_pretrained(meta['backbone'], tmp_path / 'se.pth')
    x = torch.randn(2, 3, 224, 224, dtype=DTYPE)
    assert_same_outputs(src, dst, x)
    dst.norm_eval = False  # train mode: batch statistics in every BN
    src.train(), dst.train()
    assert_same_outputs(src, dst, x[:, :, :72, :72])


def test_se_option_is_checked():
    with pytest.raises(ValueError, match=r"ElasticResNeXt: se='yes'; "
                       'allowed: True or False'):
        ElasticResNeXt(depth=50, se='yes')


# ---------------------------------------------------------- DeepLabv3 VOC
@pytest.fixture(scope='module')
def voc_release(tmp_path_factory):
    """A release Elastic-ResNeXt-50 DeepLabv3 (random weights) saved as
    segment.py saves it, converted, and loaded as an mmseg segmentor."""
    root = tmp_path_factory.mktemp('voc')
    src = randomize(ReleaseResNext(ELASTIC50, True, seg=True))
    path = str(root / 'deeplab_resnext50_elastic_pascal_v3.pth')
    torch.save({'epoch': 50, 'optimizer': {'param_groups': [{'lr': 0.0}]},
                'state_dict': {'module.' + k: v
                               for k, v in src.state_dict().items()}}, path)
    dst = str(root / 'converted.pth')
    meta = convert('elastic_voc_release', path, dst)
    model = build_target(meta['model'], 'mmseg').to(DTYPE)
    load_checkpoint(model, dst, strict=True, logger='silent')
    return src, model.eval(), meta, root


def test_voc_release_meta_and_model(voc_release):
    _, model, meta, _ = voc_release
    cfg = meta['model']
    assert meta['equivalence']['kind'] == 'exact'
    assert meta['dropped'] == [] and meta['filled'] == []
    assert cfg['type'] == 'EncoderDecoder'
    assert cfg['backbone'] == dict(
        Config.fromfile(VOC_CFG).model.backbone.to_dict(), depth=50,
        groups=4, base_width=8, base_channels=16)
    head = cfg['decode_head']
    assert (head['type'], head['in_channels'], head['channels'],
            head['num_classes']) == ('ElasticASPPHead', 512, 32, 21)
    assert meta['dataset_meta']['classes'][15] == 'person'
    assert model.decode_head.bottleneck.conv.kernel_size == (1, 1)
    assert model.decode_head.dropout is None
    assert model.decode_head.align_corners


def test_voc_release_logits_at_513(voc_release):
    """The segmentor's logits (EncoderDecoder.encode_decode: backbone, head,
    upsampling) equal the release model's, float64."""
    src, model, _, _ = voc_release
    x = torch.randn(1, 3, 513, 513, dtype=DTYPE)
    metas = [dict(img_shape=(513, 513), pad_shape=(513, 513))]
    with torch.no_grad():
        want, got = src(x), model.encode_decode(x, metas)
    assert got.shape == want.shape == (1, 21, 513, 513)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def release_eval_input(img):
    """segment.py's evaluation input for an RGB uint8 image: normalised
    ([0, 1], ImageNet mean/std), zero-padded by int((514 - side) / 2) on
    both sides, cropped to 513x513 (here at the offset that leaves the
    smaller pad before: the release draws it); with the image's place."""
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    x = (x - mean) / std
    h, w = img.shape[:2]
    tb, lr = int((514 - h) / 2), int((514 - w) / 2)
    x = F.pad(x, (lr, lr, tb, tb))
    i, j = x.shape[1] - 513, x.shape[2] - 513
    return x[None, :, i:i + 513, j:j + 513], (tb - i, lr - j)


def test_voc_release_through_the_evaluation_pipeline(voc_release):
    """An image of VOC's size through the release config's test pipeline
    (PIL decoding, centred 513x513 canvas of the mean pixel) and mmseg's
    test_step: the prediction's logits equal the release's on its padded
    input, cropped to the image (float32)."""
    from mmengine.dataset import Compose
    src, model, _, root = voc_release
    src, model = copy.deepcopy(src).float(), copy.deepcopy(model).float()
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, (375, 500, 3)).astype(np.uint8)
    Image.fromarray(img).save(root / 'img.png')
    label = rng.randint(0, 21, (375, 500)).astype(np.uint8)
    Image.fromarray(label).save(root / 'label.png')
    cfg = Config.fromfile(VOC_CFG)
    with DefaultScope.overwrite_default_scope('mmseg'):
        pipeline = Compose(cfg.test_pipeline)
    data = pipeline(dict(img_path=str(root / 'img.png'),
                         seg_map_path=str(root / 'label.png'),
                         reduce_zero_label=False, seg_fields=[]))
    assert data['data_samples'].img_padding_size == [6, 7, 69, 69]
    with torch.no_grad():
        out = model.test_step(dict(inputs=[data['inputs']],
                                   data_samples=[data['data_samples']]))[0]
        x, (top, left) = release_eval_input(img)
        want = src(x)
    want = want[0, :, top:top + 375, left:left + 500]
    got = out.seg_logits.data
    assert got.shape == want.shape
    scale = want.abs().max().item()  # float32 rounding: relative to it
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * scale)
    flips = out.pred_sem_seg.data[0] != want.argmax(0)  # float near-ties
    assert flips.float().mean() < 1e-3


def test_voc_release_without_aspp_is_refused(tmp_path):
    src = randomize(ReleaseResNext(ELASTIC50, True))  # ImageNet layout
    path = save_source(src, tmp_path / 'release.pth', prefix='module.')
    with pytest.raises(SystemExit, match="no 'aspp.aspp2.weight': not a "
                       'release DeepLabv3 checkpoint'):
        convert('elastic_voc_release', path, tmp_path / 'out.pth')
    assert not osp.exists(tmp_path / 'out.pth')


# ---------------------------------------------------- recipe's transforms
def test_random_log_rescale_is_the_release_scaling():
    """The factor is 2 ** U(-1, 1) (log-uniform in [0.5, 2]); the image is
    PIL's Lanczos resize to (int(w s + 0.5), int(h s + 0.5)), the labels
    PIL's nearest, as the release's utils.preprocess."""
    from mmengine.registry import TRANSFORMS
    t = TRANSFORMS.build(dict(type='RandomLogRescale',
                              ratio_range=(0.5, 2.0)))
    rng = np.random.RandomState(1)
    img = rng.randint(0, 256, (37, 50, 3)).astype(np.uint8)
    seg = rng.randint(0, 21, (37, 50)).astype(np.uint8)
    logs = []
    for seed in range(3):
        np.random.seed(seed)
        s = 2**(-1 + 2 * np.random.random_sample())
        np.random.seed(seed)
        out = t(dict(img=img.copy(), gt_seg_map=seg.copy()))
        size = (int(50 * s + 0.5), int(37 * s + 0.5))
        pil = Image.fromarray(img[..., ::-1]).resize(size, Image.LANCZOS)
        assert np.array_equal(out['img'], np.asarray(pil)[..., ::-1])
        assert np.array_equal(out['gt_seg_map'], np.asarray(
            Image.fromarray(seg).resize(size, Image.NEAREST)))
    np.random.seed(0)
    line = np.zeros((1, 1000, 3), np.uint8)
    for _ in range(2000):
        out = t(dict(img=line))
        logs.append(math.log2(out['scale_factor'][0]))
    hist = np.histogram(logs, bins=4, range=(-1, 1))[0]
    assert hist.min() > 400  # uniform in log2: ~500 per bin


def test_center_pad_places_the_image_in_the_middle():
    from mmengine.registry import TRANSFORMS
    t = TRANSFORMS.build(dict(type='CenterPad', size=(8, 9),
                              pad_val=(1.5, 2.5, 3.5), seg_pad_val=255))
    img = np.zeros((3, 9, 3), np.uint8)
    seg = np.ones((3, 9), np.uint8)
    out = t(dict(img=img, gt_seg_map=seg, seg_fields=['gt_seg_map']))
    assert out['img'].dtype == np.float32 and out['img'].shape == (8, 9, 3)
    assert out['img_padding_size'] == [0, 0, 2, 3]
    assert (out['img'][2:5] == 0).all()
    assert out['img'][0, 0].tolist() == [1.5, 2.5, 3.5]
    assert (out['gt_seg_map'][2:5] == 1).all() and \
        (out['gt_seg_map'][5:] == 255).all()
    with pytest.raises(ValueError, match=r'CenterPad: size=\(0, 5\)'):
        TRANSFORMS.build(dict(type='CenterPad', size=(0, 5)))
