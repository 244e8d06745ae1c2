"""Checkpoint converters (tools/model_converters/): each source layout is
rebuilt here from the release's description, independently of msdet's and
mmdet's modules, as a small random model; its converted checkpoint, loaded
by ``init_cfg=dict(type='Pretrained')`` into the msdet backbone, must give
the same stage outputs (float64, to 1e-5) where the mapping is exact."""
import json
import math
import os
import os.path as osp
from functools import partial

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from msdet.models.backbones import PSResNet, ScaleNet
from msdet.models.backbones.scalenet_structure import PUBLISHED
from msdet.models.converters import (ConversionError, SourceDict,
                                     build_target, convert_state_dict,
                                     infer_depth, load_source, same_key)
from msdet.models.release import psconv as psconv_rules
from msdet.ops import PSConv2d, set_subnet
from conftest import load_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BLOCKS50 = (3, 4, 6, 3)
#: float64: an exact mapping agrees to ~1e-14, a wrong one by O(1).
DTYPE = torch.float64


# ------------------------------------------------ source layouts (test-side)
class ReleasePSConv(nn.Module):
    """The release's conv2 as its code is laid out: three convs summed;
    P = 4 contiguous channel parts per group (G groups)."""

    def __init__(self, channels, stride=1, groups=1):
        super().__init__()
        self.groups = groups
        c = channels
        self.gwconv = nn.Conv2d(c, c, 3, stride, padding=2, dilation=2,
                                groups=4 * groups, bias=False)
        self.gwconv_shift = nn.Conv2d(c, c, 3, stride, padding=4,
                                      dilation=4, groups=4 * groups,
                                      bias=False)
        self.conv = nn.Conv2d(c, c, 3, stride, padding=1, groups=groups,
                              bias=False)
        self.zero_masked()

    def masked_blocks(self):
        """(rows, cols) of conv's blocks [out part i, in part i] and
        [out part (i + 2) % 4, in part i], in every group."""
        c, n = self.conv.weight.shape[:2]
        b, a = c // (4 * self.groups), n // 4
        for g in range(self.groups):
            for i in range(4):
                for j in (i, (i + 2) % 4):
                    yield (slice((4 * g + j) * b, (4 * g + j + 1) * b),
                           slice(i * a, (i + 1) * a))

    @torch.no_grad()
    def zero_masked(self):
        for rows, cols in self.masked_blocks():
            self.conv.weight[rows, cols] = 0

    def forward(self, x):
        swapped = torch.cat([torch.cat(z.chunk(2, 1)[::-1], 1)
                             for z in x.chunk(self.groups, 1)], 1)
        return self.gwconv(x) + self.gwconv_shift(swapped) + self.conv(x)


def plain_conv2(width, stride, groups):
    return nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)


def release_conv2(width, stride, groups):
    return ReleasePSConv(width, stride, groups)


class SrcBottleneck(nn.Module):
    """torchvision-style bottleneck (stride on the 3x3 conv)."""

    def __init__(self, inplanes, planes, stride, groups, width, conv2):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv2(width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(out + res)


class SrcResNet(nn.Module):
    """An ImageNet ResNet/ResNeXt with torchvision's keys; ``forward``
    returns the four stage outputs."""

    def __init__(self, blocks=BLOCKS50, base=16, groups=1, base_width=4,
                 conv2=plain_conv2, classes=10, block=None):
        """``block(inplanes, planes, stride, groups, width, stage=i)``
        builds the blocks of stage i; default ``SrcBottleneck`` with
        ``conv2``."""
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        inplanes = base
        for i, n in enumerate(blocks):
            planes = base * 2**i
            width = planes if groups == 1 else \
                planes * base_width // base * groups
            layer = []
            for j in range(n):
                args = (inplanes, planes, 2 if i and not j else 1, groups,
                        width)
                layer.append(SrcBottleneck(*args, conv2) if block is None
                             else block(*args, stage=i))
                inplanes = planes * 4
            self.add_module(f'layer{i + 1}', nn.Sequential(*layer))
        self.fc = nn.Linear(inplanes, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        outs = []
        for i in range(1, 5):
            x = getattr(self, f'layer{i}')(x)
            outs.append(x)
        return outs


class ReleaseSABlock(nn.Module):
    """The ScaleNet release's block: a strided block max-pools its input
    (rounding down); per scale s: max pool s (rounding down), conv
    ``conv2.{i}`` (3x3, or 1x1 where the design side <= 2**i), upsample
    (nearest if the size is a multiple of the pooled size, else bilinear),
    BN ``bn2.{i}``; concatenation, ReLU, conv3, bn3, residual."""
    scales = (1, 2, 4, 7)

    def __init__(self, inplanes, planes, entry, stride):
        super().__init__()
        channels, side = entry[:-1], entry[-1]
        self.stride = stride
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.ModuleList()
        self.bn2 = nn.ModuleList()
        for i, c in enumerate(channels):
            k = 3 if side > 2**i else 1
            self.conv2.append(nn.Conv2d(planes, c, k, padding=k // 2,
                                        bias=False) if c else None)
            self.bn2.append(nn.BatchNorm2d(c) if c else None)
        self.conv3 = nn.Conv2d(sum(channels), planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, bias=False),
                nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        if self.stride > 1:
            x = F.max_pool2d(x, self.stride)
        res = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        h, w = out.shape[-2:]
        parts = []
        for s, conv, bn in zip(self.scales, self.conv2, self.bn2):
            if conv is None:
                continue
            y = conv(out if s == 1 else F.max_pool2d(out, s))
            if s > 1:
                nearest = h % y.shape[2] == 0 and w % y.shape[3] == 0
                y = F.interpolate(y, size=(h, w), mode='nearest' if nearest
                                  else 'bilinear', align_corners=None
                                  if nearest else False)
            parts.append(bn(y))
        out = self.bn3(self.conv3(F.relu(torch.cat(parts, 1))))
        return F.relu(out + res)


class ReleaseScaleNet(SrcResNet):

    def __init__(self, structure, blocks=BLOCKS50, base=16, classes=10):
        nn.Module.__init__(self)
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        entries, inplanes = iter(structure), base
        for i, n in enumerate(blocks):
            planes = base * 2**i
            layer = []
            for j in range(n):
                layer.append(ReleaseSABlock(inplanes, planes, next(entries),
                                            2 if i and not j else 1))
                inplanes = planes * 4
            self.add_module(f'layer{i + 1}', nn.Sequential(*layer))
        self.fc = nn.Linear(inplanes, classes)


#: The published ScaleNet-50 allocation at 1/8 width (channels rounded up,
#: its zeros kept): the release's layout with its real pooling sizes.
STRUCTURE = [[math.ceil(c / 8) for c in entry[:-1]] + entry[-1:]
             for entry in PUBLISHED['scalenet50']]


class ReleaseElasticBlock(SrcBottleneck):
    """The ELASTIC release's bottleneck: a full-resolution half ``conv1``,
    ``bn1``, ``conv2``, ``bn2``, ``conv3`` and, in an Elastic block (an
    ``elastic`` network's stride-1 blocks outside the last stage) or where
    ``halves``, a low-resolution half ``conv1_d`` .. ``conv3_d``, each with
    half the width and paths. An Elastic block runs the ``_d`` half on the
    input 2x2 average-pooled (odd sides replicate-padded) and upsamples its
    output 2x bilinearly, cropped; the halves' conv3 outputs are summed
    before the shared ``bn3``."""

    def __init__(self, inplanes, planes, stride, groups, width, stage,
                 elastic=True, halves=False):
        elastic = elastic and stride == 1 and stage < 3
        n = 2 if elastic or halves else 1
        super().__init__(inplanes, planes, stride, groups // n, width // n,
                         plain_conv2)
        self.elastic, self.halves = elastic, n == 2
        if self.halves:
            w = width // 2
            self.conv1_d = nn.Conv2d(inplanes, w, 1, bias=False)
            self.bn1_d = nn.BatchNorm2d(w)
            self.conv2_d = plain_conv2(w, stride, groups // 2)
            self.bn2_d = nn.BatchNorm2d(w)
            self.conv3_d = nn.Conv2d(w, planes * 4, 1, bias=False)

    def half(self, x, suffix=''):
        def m(name):
            return getattr(self, name + suffix)
        x = F.relu(m('bn1')(m('conv1')(x)))
        x = F.relu(m('bn2')(m('conv2')(x)))
        return m('conv3')(x)

    def forward(self, x):
        out = self.half(x)
        if self.halves and self.elastic:
            h, w = x.shape[-2:]
            low = F.avg_pool2d(F.pad(x, (0, w % 2, 0, h % 2),
                                     mode='replicate'), 2)
            out = out + F.interpolate(
                self.half(low, '_d'), scale_factor=2, mode='bilinear',
                align_corners=False)[..., :h, :w]
        elif self.halves:
            out = out + self.half(x, '_d')
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(self.bn3(out) + res)


#: Blocks per stage of Elastic-ResNeXt-50 / -101 (appendix B).
ELASTIC50, ELASTIC101 = (6, 8, 5, 3), (12, 14, 20, 3)


def release_elastic(blocks=ELASTIC50, elastic=True, halves=False):
    """A release ResNeXt 4x4d (base 16, 1/4 of 32x4d's width)."""
    return randomize(SrcResNet(blocks, groups=4, base_width=4, block=partial(
        ReleaseElasticBlock, elastic=elastic, halves=halves)))


class SrcVGG(nn.Module):
    """torchvision's ``vgg16_bn`` (``bn=False``: ``vgg16``) at 1/8 width:
    ``features`` (per conv: 3x3 conv with bias, BN, ReLU; a max-pool per
    stage) and ``classifier`` (Linear, ReLU, Dropout, ...); ``forward``
    returns pool2..pool5."""

    def __init__(self, stages=(2, 2, 3, 3, 3), base=8, bn=True, classes=10):
        super().__init__()
        layers, c, self.ends = [], 3, []
        for i, n in enumerate(stages):
            planes = base * min(2**i, 8)
            for _ in range(n):
                layers.append(nn.Conv2d(c, planes, 3, padding=1))
                if bn:
                    layers.append(nn.BatchNorm2d(planes))
                layers.append(nn.ReLU())
                c = planes
            layers.append(nn.MaxPool2d(2, 2))
            self.ends.append(len(layers))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(c, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 16),
            nn.ReLU(), nn.Dropout(), nn.Linear(16, classes))

    def forward(self, x):
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i + 1 in self.ends[1:]:
                outs.append(x)
        return outs


@torch.no_grad()
def randomize(model, seed=0):
    """Random weights and non-trivial BN statistics; float64, eval mode.
    The residual branch's last BN is scaled down to keep activations O(1)."""
    g = torch.Generator().manual_seed(seed)
    model.to(DTYPE)
    for name, p in model.named_parameters():
        if p.dim() > 1:
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) *
                    (2 / p[0].numel())**0.5)
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.num_batches_tracked.fill_(100)
            if name.endswith('bn3'):
                m.weight.mul_(0.3)
    for m in model.modules():
        if isinstance(m, ReleasePSConv):
            m.zero_masked()
    return model.eval()


def save_source(model, path, wrap='state_dict', prefix=''):
    """Save a model (or a state_dict) as a release would."""
    if isinstance(model, nn.Module):
        model = model.state_dict()
    sd = {prefix + k: v for k, v in model.items()}
    torch.save(sd if wrap is None else {wrap: sd, 'epoch': 90}, path)
    return str(path)


def convert(tool, src, dst, *args):
    """Run the converter's command line in-process; return its meta."""
    return load_tool(f'model_converters/{tool}').main(
        [str(src), str(dst), *map(str, args)])


def load_pretrained(cfg, ckpt):
    """The msdet backbone of ``cfg`` initialised from ``ckpt`` by mmengine's
    ``Pretrained`` init (as in a config), float64, eval mode."""
    model = MODELS.build(dict(cfg, init_cfg=dict(type='Pretrained',
                                                 checkpoint=str(ckpt))))
    model.to(DTYPE)
    model.init_weights()
    model.eval()  # mmdet's ResNet.train returns None
    return model


def assert_same_outputs(src, dst, x, stages=range(4)):
    with torch.no_grad():
        a, b = src(x), dst(x)
    assert len(b) == 4
    for i in stages:
        assert a[i].shape == b[i].shape
        torch.testing.assert_close(b[i], a[i], rtol=1e-5, atol=1e-5,
                                   msg=f'stage {i + 1}')


# --------------------------------------------------------------- PSConv op
@pytest.mark.parametrize('groups,stride', [(1, 1), (2, 2)])
def test_psconv_mapping_is_exact_per_op(groups, stride):
    """One release conv2 == msdet's PSConv with the merged weight, the input
    channels permuted by in_dest and the output by out_dest; every kernel
    keeps its dilation rate."""
    tool = psconv_rules
    c = 32 * groups
    rel = randomize(ReleasePSConv(c, stride, groups))
    ps = PSConv2d(c, c, 3, stride, 1, groups=groups).to(DTYPE)
    s = tool.rate_shift(ps.pattern)
    assert s == 1
    in_dest = tool.channel_dest(ps, c, s)
    out_dest = tool.channel_dest(ps, c, 0)
    n = c // groups
    w = tool.merged_weight('conv2', rel.gwconv.weight, rel.gwconv_shift.weight,
                           rel.conv.weight, groups, False, None)
    w = torch.empty_like(w).index_copy_(0, out_dest, w)
    ps.load_state_dict({'weight': torch.empty_like(w).index_copy_(
        1, in_dest[:n], w)})  # G, block layout: what the converter writes
    # rates: release block [out part j, in part i] -> (2, 1, 4, 1)[(i - j) % 4]
    part = (torch.arange(c) % n) // (n // 4)
    release_rate = torch.tensor(tool.RELEASE_RATES)[
        (part[None, :n] - part[:, None]) % 4]
    D = ps.dilation_matrix
    assert torch.equal(D[out_dest][:, in_dest[:n]], release_rate)
    x = torch.randn(2, c, 13, 11, dtype=DTYPE)
    x_ms = torch.empty_like(x).index_copy_(1, in_dest, x)
    y = ps(x_ms)
    torch.testing.assert_close(y[:, out_dest], rel(x), rtol=1e-5, atol=1e-5)


def test_psconv_pattern_without_release_rates_is_refused():
    tool = psconv_rules
    assert tool.rate_shift((2, 1, 4, 1)) == 0
    with pytest.raises(ConversionError, match='cannot hold'):
        tool.rate_shift((1, 2, 4, 1))


# -------------------------------------------------------- PSConv backbones
@pytest.mark.parametrize('kind', ['PSResNet', 'PSResNeXt'])
def test_psconv_release_converts_exactly(tmp_path, kind):
    kwargs = dict(groups=2, base_width=8) if kind == 'PSResNeXt' else {}
    src = randomize(SrcResNet(conv2=release_conv2, **kwargs))
    path = save_source(src, tmp_path / 'release.pth')
    meta = convert('psconv_release', path, tmp_path / 'ps.pth')
    cfg = meta['backbone']
    assert cfg['type'] == kind and cfg['depth'] == 50
    assert cfg['base_channels'] == 16
    assert meta['equivalence']['kind'] == 'exact'
    assert meta['dropped'] == ['fc.weight', 'fc.bias']
    dst = load_pretrained(cfg, tmp_path / 'ps.pth')
    x = torch.randn(2, 3, 64, 64, dtype=DTYPE)
    assert_same_outputs(src, dst, x)
    if kind == 'PSResNet':  # train mode: same batch statistics per channel
        dst.norm_eval = False
        src.train(), dst.train()
        assert_same_outputs(src, dst, x)


def test_psconv_release_nonzero_masked_blocks(tmp_path):
    src = randomize(SrcResNet(conv2=release_conv2, groups=2, base_width=8))
    with torch.no_grad():
        src.layer2[1].conv2.conv.weight[0, 0, 1, 1] = 0.5  # masked block
    path = save_source(src, tmp_path / 'release.pth')
    with pytest.raises(SystemExit, match=r'layer2\.1\.conv2\.conv\.weight'
                       r'.*--zero-masked-blocks'):
        convert('psconv_release', path, tmp_path / 'ps.pth')
    assert not osp.exists(tmp_path / 'ps.pth')
    meta = convert('psconv_release', path, tmp_path / 'ps.pth',
                   '--zero-masked-blocks')
    assert meta['equivalence']['kind'] == 'approximate'
    assert 'layer2.1.conv2.conv.weight' in meta['notes'][0]


# ---------------------------------------------------------------- ScaleNet
@pytest.fixture(scope='module')
def scalenet(tmp_path_factory):
    """A release ScaleNet-50 at 1/8 width, converted with its structure."""
    tmp = tmp_path_factory.mktemp('scalenet')
    src = randomize(ReleaseScaleNet(STRUCTURE, base=8))
    structure = tmp / 'structure.json'
    structure.write_text(json.dumps(STRUCTURE))
    path = save_source(src, tmp / 'release.pth', wrap=None, prefix='module.')
    meta = convert('scalenet_release', path, tmp / 'scalenet.pth',
                   '--structure', structure)
    return src, meta, load_pretrained(meta['backbone'], tmp / 'scalenet.pth')


#: 224: ImageNet (stage 3 pools 14 -> 3 at scale 4: bilinear); 513: odd
#: sides (the strided pools round down); 800x1216: a detection input
#: (bilinear in every stage); 896: every pooled side divides its map
#: (nearest everywhere).
SIZES = [(224, 224), (513, 513), (800, 1216), (896, 896)]


def test_scalenet_release_converts_exactly(scalenet):
    src, meta, dst = scalenet
    assert meta['backbone']['type'] == 'ScaleNet'
    assert meta['backbone']['resample'] == 'release'
    assert meta['equivalence']['kind'] == 'exact'
    assert set(dst.layer1[2].conv2.branches) == {'0', '1', '3'}  # no 2
    for size in SIZES:
        assert_same_outputs(src, dst, torch.randn(1, 3, *size, dtype=DTYPE))


def test_scalenet_paper_upsampling_differs_where_the_release_is_bilinear(
        scalenet):
    """The same weights with the paper's nearest upsampling: the release's
    function only where every pooled side divides its map (896 px); at 224
    px stages 3-4 differ, at 800x1216 every stage."""
    src, meta, dst = scalenet
    cfg = dict(meta['backbone'], resample='nearest', init_cfg=None)
    paper = MODELS.build(cfg).to(DTYPE)
    paper.load_state_dict(dst.state_dict())
    paper.eval()
    for size, same in (((896, 896), (0, 1, 2, 3)), ((224, 224), (0, 1)),
                       ((800, 1216), ())):
        x = torch.randn(1, 3, *size, dtype=DTYPE)
        with torch.no_grad():
            for i, (a, b) in enumerate(zip(src(x), paper(x))):
                if i in same:
                    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
                else:  # float64: an equal function agrees to ~1e-14
                    assert (a - b).norm() > 1e-3 * a.norm(), (size, i)


def test_scalenet_release_reads_the_published_allocation():
    """Without --structure the checkpoint's channels per scale name the
    published allocation (ScaleNet-50-light, -152...)."""
    tool = load_tool('model_converters/scalenet_release')

    def source(name):
        blocks = PUBLISHED[name]
        layers = [n for n, (_, b) in ScaleNet.arch_settings.items()
                  if sum(b) == len(blocks)]
        stages = ScaleNet.arch_settings[layers[0]][1]
        sd, k = {'conv1.weight': torch.empty(64, 0)}, 0
        for i, n in enumerate(stages):
            for j in range(n):
                sd[f'layer{i + 1}.{j}.conv3.weight'] = torch.empty(
                    256 * 2**i, 0)
                for b, c in enumerate(blocks[k][:-1]):
                    if c:
                        sd[f'layer{i + 1}.{j}.conv2.{b}.weight'] = \
                            torch.empty(c, 0)
                k += 1
        return sd

    args = tool.CONVERTER.parser().parse_args(['a', 'b'])
    for name, want in (
            ('scalenet50', {}),
            ('scalenet50_light', dict(structure='scalenet50_light')),
            ('scalenet152', {})):
        cfg = tool.target_cfg(SourceDict(source(name)), args)
        depth = 152 if '152' in name else 50
        assert cfg == dict(type='ScaleNet', depth=depth, **want,
                           resample='release')
    sd = source('scalenet50')
    sd['layer3.1.conv2.1.weight'] = torch.empty(3, 0)
    with pytest.raises(ConversionError, match=r'none of the published '
                       r'depth-50 allocations \(scalenet50, scalenet50_light'
                       r'\); .*--structure FILE'):
        tool.target_cfg(SourceDict(sd), args)


def test_scalenet_wrong_structure_names_keys(tmp_path, scalenet):
    src = scalenet[0]
    path = save_source(src, tmp_path / 'release.pth')
    bad = [list(e) for e in STRUCTURE]
    bad[4][1] = 7  # layer2.1 scale 2: 5 channels in the checkpoint
    bad[6][3] = 2  # layer2.3 scale 7: absent in the checkpoint
    (tmp_path / 's.json').write_text(json.dumps(bad))
    with pytest.raises(SystemExit) as err:
        convert('scalenet_release', path, tmp_path / 'out.pth',
                '--structure', tmp_path / 's.json')
    msg = str(err.value)
    assert 'layer2.3.conv2.3.weight' in msg  # missing
    assert 'layer2.1.conv2.branches.1.weight' in msg  # shape
    assert 'layer2.1.bn2.weight' in msg
    assert not osp.exists(tmp_path / 'out.pth')


# ------------------------------------------------------------- torchvision
@pytest.mark.parametrize('groups', [1, 2])
def test_torchvision_resnet_is_a_warm_start(tmp_path, groups):
    kwargs = dict(groups=2, base_width=8) if groups > 1 else {}
    src = randomize(SrcResNet(**kwargs))
    sd = {k: v for k, v in src.state_dict().items()
          if not k.endswith('num_batches_tracked')}  # old torchvision files
    torch.save(sd, tmp_path / 'r50.pth')
    meta = convert('torchvision_resnet', tmp_path / 'r50.pth',
                   tmp_path / 'ps.pth')
    cfg = meta['backbone']
    assert cfg['type'] == ('PSResNeXt' if groups > 1 else 'PSResNet')
    assert meta['equivalence']['kind'] == 'warm start'
    assert meta['dropped'] == ['fc.weight', 'fc.bias']
    assert len(meta['filled']) == 53  # every BN's counter, reported
    dst = load_pretrained(cfg, tmp_path / 'ps.pth')
    for k, v in dst.state_dict().items():  # loaded unchanged
        if not k.endswith('num_batches_tracked'):
            assert torch.equal(v, sd[k]), k
    x = torch.randn(1, 3, 64, 64, dtype=DTYPE)
    with torch.no_grad():  # rates (1, 2, 1, 4): a different function
        assert not torch.allclose(src(x)[0], dst(x)[0], atol=1e-3)
    # with every rate 1 (a plain conv) the same keys reproduce the source
    plain = load_pretrained(dict(cfg, ps_cfg=dict(pattern=(1, ))),
                            tmp_path / 'ps.pth')
    assert_same_outputs(src, plain, x)


def test_depth_is_read_from_the_blocks():
    keys = {f'layer{i + 1}.{j}.conv1.weight': None
            for i, n in enumerate((3, 4, 23, 3)) for j in range(n)}
    assert infer_depth(keys, PSResNet.arch_settings, 'PSResNet') == 101
    keys['layer3.23.conv1.weight'] = None
    with pytest.raises(ConversionError, match=r'\(3, 4, 24, 3\)'):
        infer_depth(keys, PSResNet.arch_settings, 'PSResNet')


# ----------------------------------------------------------------- ELASTIC
@pytest.mark.parametrize('blocks,elastic,halves,flags,want,kind', [
    # Elastic-50: _d halves in the Elastic blocks only
    (ELASTIC50, True, False, (), {}, 'exact'),
    # both halves in every block (merged where not Elastic)
    (ELASTIC50, True, True, (), {}, 'exact'),
    (ELASTIC101, True, False, (), dict(depth=101), 'exact'),
    # sElastic: ResNeXt's blocks per stage with Elastic blocks
    (BLOCKS50, True, False, (), dict(stage_blocks=BLOCKS50), 'exact'),
    (BLOCKS50, True, True, ('--elastic', ), dict(stage_blocks=BLOCKS50),
     'exact'),
    # the release's plain ResNeXt-50 (both halves, no pooling)
    (BLOCKS50, False, True, (), dict(elastic=False), 'conditional'),
    # torchvision's ResNeXt-50 (no halves)
    (BLOCKS50, False, False, (), dict(elastic=False), 'exact'),
], ids=['Elastic50', 'Elastic50-halves', 'Elastic101', 'sElastic50',
        'sElastic50-halves', 'release-ResNeXt50', 'torchvision-ResNeXt50'])
def test_elastic_release_converts_exactly(tmp_path, blocks, elastic, halves,
                                          flags, want, kind):
    src = release_elastic(blocks, elastic, halves)
    path = save_source(src, tmp_path / 'release.pth', prefix='module.')
    meta = convert('elastic_release', path, tmp_path / 'ex.pth', *flags)
    assert meta['backbone'] == dict(
        dict(type='ElasticResNeXt', depth=50, groups=4, base_width=4,
             base_channels=16), **want)
    assert meta['equivalence']['kind'] == kind
    assert ('--elastic' in ''.join(meta['notes'])) == (kind != 'exact')
    assert meta['dropped'] == ['fc.weight', 'fc.bias']
    dst = load_pretrained(meta['backbone'], tmp_path / 'ex.pth')
    x = torch.randn(2, 3, 72, 72, dtype=DTYPE)  # layer2/3 maps 9, 5: odd
    assert_same_outputs(src, dst, x)
    dst.norm_eval = False  # train mode: every BN keeps its channels
    src.train(), dst.train()
    assert_same_outputs(src, dst, x)


def test_elastic_release_bad_keys_are_named(tmp_path):
    sd = release_elastic(halves=True).state_dict()
    sd['layer1.2.selayer.fc.0.weight'] = torch.zeros(16, 64)  # an SE net
    del sd['layer2.3.conv2_d.weight']
    sd['layer4.0.conv2_d.weight'] = torch.zeros(64, 16, 3, 3)  # 4 paths
    path = save_source(sd, tmp_path / 'release.pth', prefix='module.')
    with pytest.raises(SystemExit) as err:
        convert('elastic_release', path, tmp_path / 'out.pth')
    msg = str(err.value)
    assert 'missing in the source (1):\n  layer2.3.conv2_d.weight' in msg
    assert 'unknown source keys (not used by the conversion) (1):\n' \
        '  layer1.2.selayer.fc.0.weight' in msg
    assert 'layer4.0.conv2.weight: layer4.0.conv2_d.weight has shape ' \
        '(64, 16, 3, 3), layer4.0.conv2.weight (64, 32, 3, 3)' in msg
    assert 'fc.weight' not in msg
    assert not osp.exists(tmp_path / 'out.pth')


# -------------------------------------------------------------- VGG-16-BN
def test_vgg16_bn_converts_exactly(tmp_path):
    src = randomize(SrcVGG())
    path = save_source(src, tmp_path / 'vgg16_bn.pth', wrap=None)
    meta = convert('vgg16_bn', path, tmp_path / 'slimvgg.pth')
    assert meta['backbone'] == dict(type='SlimmableVGG', depth=16,
                                    base_channels=8)
    assert meta['equivalence']['kind'] == 'conditional'
    assert meta['dropped'] == [f'classifier.{i}.{p}' for i in (0, 3, 6)
                               for p in ('weight', 'bias')]
    dst = load_pretrained(meta['backbone'], tmp_path / 'slimvgg.pth')
    assert_same_outputs(src, dst, torch.randn(2, 3, 64, 64, dtype=DTYPE))


def test_vgg16_bn_bad_sources_are_named():
    tool = load_tool('model_converters/vgg16_bn')
    with pytest.raises(ConversionError, match=r'convs at features '
                       r'\[0, 2, 5, 7, 10, .*16: \[0, 3, 7, 10, 14, '):
        tool.target_cfg(SourceDict(SrcVGG(bn=False).state_dict()))
    sd = SrcVGG().state_dict()
    del sd['features.11.running_var']
    sd['features.43.weight'] = torch.ones(64)  # index 43: the last pool
    sd['features.1.bias'] = torch.zeros(9)
    source = SourceDict(sd)
    target = build_target(tool.target_cfg(source))
    with pytest.raises(ConversionError) as err:
        convert_state_dict(source, target.state_dict(),
                           same_key, tool.DROP)
    msg = str(err.value)
    assert 'missing in the source (1):\n  features.11.running_var' in msg
    assert 'unknown source keys (not used by the conversion) (1):\n' \
        '  features.43.weight' in msg
    assert 'features.1.bias: msdet has shape (8,), the source gives (9,)' \
        in msg
    assert 'classifier' not in msg


# ------------------------------------- slimmable VGG (US-Net / MutualNet)
def release_channels(channels, width):
    """The released slimmable ops' ``make_divisible(C * w)`` (divisor 8,
    minimum 1, one more divisor where rounding lost over 10%)."""
    v = channels * width
    n = max(1, int(v + 4) // 8 * 8)
    return n + 8 if n < 0.9 * v else n


class ReleaseUSConv2d(nn.Conv2d):
    """The releases' ``USConv2d`` (ratio 1): at width ``w`` the first
    ``make_divisible(C * w)`` output channels and as many inputs (all 3 RGB
    inputs for the first conv)."""
    width = 1.0

    def __init__(self, c_in, c_out, slim_in=True):
        super().__init__(c_in, c_out, 3, padding=1)
        self.slim_in = slim_in

    def forward(self, x):
        n_in = release_channels(self.in_channels, self.width) \
            if self.slim_in else self.in_channels
        n_out = release_channels(self.out_channels, self.width)
        return F.conv2d(x, self.weight[:n_out, :n_in], self.bias[:n_out],
                        padding=1)


class ReleaseUSBatchNorm2d(nn.BatchNorm2d):
    """MutualNet's ``USBatchNorm2d``: affine shared by all widths, no
    statistics of its own; ``bn.{k}`` (no affine) keeps the statistics of
    the k-th listed width; other widths use batch statistics."""
    width = 1.0

    def __init__(self, c, widths):
        super().__init__(c, track_running_stats=False)
        self.widths = widths
        self.bn = nn.ModuleList(nn.BatchNorm2d(release_channels(c, w),
                                               affine=False) for w in widths)

    def forward(self, x):
        c = release_channels(self.num_features, self.width)
        mean = var = None
        if self.width in self.widths:
            stats = self.bn[self.widths.index(self.width)]
            mean, var = stats.running_mean[:c], stats.running_var[:c]
        return F.batch_norm(x, mean, var, self.weight[:c], self.bias[:c],
                            self.training, self.momentum, self.eps)


class ReleaseSwitchableBatchNorm2d(nn.Module):
    """Slimmable networks' ``SwitchableBatchNorm2d``: one BN per width."""
    width = 1.0

    def __init__(self, c, widths):
        super().__init__()
        self.widths = widths
        self.bn = nn.ModuleList(nn.BatchNorm2d(release_channels(c, w))
                                for w in widths)

    def forward(self, x):
        return self.bn[self.widths.index(self.width)](x)


class ReleaseSlimmableVGG(SrcVGG):
    """torchvision's ``vgg16_bn`` layout built from the releases' slimmable
    ops (1/4 width); ``set_width`` sets every layer's width."""

    def __init__(self, bn, widths, base=16):
        nn.Module.__init__(self)
        layers, c, self.ends = [], 3, []
        for i, n in enumerate((2, 2, 3, 3, 3)):
            planes = base * min(2**i, 8)
            for _ in range(n):
                layers += [ReleaseUSConv2d(c, planes, slim_in=c != 3),
                           bn(planes, widths), nn.ReLU()]
                c = planes
            layers.append(nn.MaxPool2d(2, 2))
            self.ends.append(len(layers))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(c, 10))

    def set_width(self, width):
        for m in self.modules():
            if hasattr(m, 'width'):
                m.width = width


@torch.no_grad()
def randomize_slimmable(model):
    """``randomize`` for the release layouts: random weights, and random
    affine and statistics in every BN that has them (statistics-only and
    affine-only BNs included); float64, eval mode."""
    g = torch.Generator().manual_seed(1)
    model.to(DTYPE)
    for p in model.parameters():
        if p.dim() > 1:
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) *
                    (2 / p[0].numel())**0.5)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            if m.affine:
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            if m.track_running_stats:
                m.running_mean.copy_(
                    torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(
                    torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def save_release(model, path):
    """As the releases' train.py saves: DataParallel keys in 'model'."""
    torch.save({'model': {f'module.{k}': v
                          for k, v in model.state_dict().items()},
                'optimizer': {'state': {}, 'param_groups': []},
                'last_epoch': 99}, path)
    return path


def assert_same_at_widths(src, dst, widths, train=False):
    x = torch.randn(2, 3, 32, 32, dtype=DTYPE)
    src.train(train), dst.train(train)
    for width in widths:
        src.set_width(width)
        set_subnet(dst, width=width)
        with torch.no_grad():
            a, b = src(x), dst(x)
        for i, (u, v) in enumerate(zip(a, b)):
            assert u.shape == v.shape, (width, i)
            torch.testing.assert_close(v, u, rtol=1e-5, atol=1e-5,
                                       msg=f'width {width}, stage {i + 2}')


#: The release's width_mult_list, in its (unsorted) order.
WIDTHS = [0.5, 1.0, 0.25, 0.75]
#: Widths with the release's rounding where nearest-multiple rounding
#: differs (64 channels at 0.3: 24, not 16; 128 at 0.28: 40, not 32).
ANY_WIDTHS = [1.0, 0.75, 0.43, 0.3, 0.28, 0.25]


def test_usnet_vgg_converts_to_the_shared_bn(tmp_path):
    src = randomize_slimmable(
        ReleaseSlimmableVGG(ReleaseUSBatchNorm2d, WIDTHS))
    assert 'features.1.running_mean' not in src.state_dict()
    assert 'features.1.bn.3.running_mean' in src.state_dict()
    path = save_release(src, tmp_path / 'usnet.pt')
    meta = convert('vgg16_bn', path, tmp_path / 'slimvgg.pth', '--widths',
                   *WIDTHS)
    assert meta['backbone'] == dict(type='SlimmableVGG', depth=16,
                                    base_channels=16)
    assert meta['equivalence']['kind'] == 'conditional'
    dropped = [k for k in meta['dropped'] if k.startswith('features.')]
    assert len(dropped) == 13 * 3 * 3  # 13 BNs x 3 widths x 3 buffers
    assert not any('.bn.1.' in k for k in dropped)  # width 1.0 kept
    dst = load_pretrained(meta['backbone'], tmp_path / 'slimvgg.pth')
    assert_same_at_widths(src, dst, [1.0])  # eval: width 1.0's statistics
    assert_same_at_widths(src, dst, ANY_WIDTHS, train=True)


@pytest.mark.parametrize('bn,args', [
    (ReleaseUSBatchNorm2d, ['--switchable-bn']),  # statistics per width
    (ReleaseSwitchableBatchNorm2d, [])])  # slimmable networks: BN for BN
def test_per_width_bns_convert_to_private_bns(tmp_path, bn, args):
    src = randomize_slimmable(ReleaseSlimmableVGG(bn, WIDTHS))
    path = save_release(src, tmp_path / 'release.pt')
    meta = convert('vgg16_bn', path, tmp_path / 'slimvgg.pth', '--widths',
                   *WIDTHS, *args)
    assert meta['backbone']['switchable_bn'] == WIDTHS
    assert meta['equivalence']['kind'] == 'exact'
    assert meta['dropped'] == ['classifier.0.weight', 'classifier.0.bias']
    dst = load_pretrained(meta['backbone'], tmp_path / 'slimvgg.pth')
    assert_same_at_widths(src, dst, WIDTHS)
    assert_same_at_widths(src, dst, WIDTHS, train=True)


def test_per_width_layouts_need_their_widths(tmp_path):
    tool = load_tool('model_converters/vgg16_bn')
    parse = tool.CONVERTER.parser().parse_args
    usnet = SourceDict(ReleaseSlimmableVGG(ReleaseUSBatchNorm2d,
                                           WIDTHS).state_dict())
    with pytest.raises(ConversionError, match=r'US-Net layout: features.1.'
                       r'bn.\{0..3\} with \[8, 16, 8, 16\] channels\); give '
                       r'the 4 widths .* --widths W1'):
        tool.target_cfg(usnet, parse(['a', 'b']))
    with pytest.raises(ConversionError, match='4 widths'):
        tool.target_cfg(usnet, parse(['a', 'b', '--widths', '0.5', '1']))
    with pytest.raises(ConversionError, match=r'width 1.0, which the source '
                       r'does not have; convert with --switchable-bn'):
        tool.target_cfg(usnet, parse(['a', 'b', '--widths', '0.5', '0.9',
                                      '0.25', '0.75']))
    with pytest.raises(ConversionError, match='--widths / --switchable-bn '
                       'are for per-width BN layouts'):
        tool.target_cfg(SourceDict(SrcVGG().state_dict()),
                        parse(['a', 'b', '--widths', '1.0']))
    # widths that do not fit the per-width BNs: shape errors, nothing written
    path = save_release(ReleaseSlimmableVGG(ReleaseSwitchableBatchNorm2d,
                                            WIDTHS), tmp_path / 's.pt')
    with pytest.raises(SystemExit, match=r'features.8.bns.0.weight: msdet '
                       r'has shape \(8,\), the source gives \(16,\)'):
        convert('vgg16_bn', path, tmp_path / 'out.pth', '--widths',
                0.25, 1.0, 0.5, 0.75)
    assert not osp.exists(tmp_path / 'out.pth')


# --------------------------------------------------- reading and reporting
@pytest.fixture(scope='module')
def r50_state():
    return randomize(SrcResNet()).state_dict()


@pytest.mark.parametrize('wrap,prefix', [
    (None, ''), ('state_dict', ''), ('model', ''), ('state_dict', 'module.'),
    (None, 'module.')])
def test_source_wrappers_and_prefix(tmp_path, r50_state, wrap, prefix):
    sd = {prefix + k: v for k, v in r50_state.items()}
    torch.save(sd if wrap is None else {wrap: sd, 'meta': {'a': 1}},
               tmp_path / 'src.pth')
    got = load_source(tmp_path / 'src.pth')
    assert list(got) == list(r50_state)
    assert all(torch.equal(got[k], v) for k, v in r50_state.items())


def test_unknown_and_missing_keys_are_named(tmp_path, r50_state):
    sd = dict(r50_state)
    sd['layer1.0.se.fc1.weight'] = torch.zeros(4, 4)
    del sd['layer2.1.conv3.weight']
    del sd['layer3.0.bn1.running_var']
    sd['layer4.2.bn3.bias'] = torch.zeros(7)
    torch.save({'state_dict': sd}, tmp_path / 'src.pth')
    with pytest.raises(SystemExit) as err:
        convert('torchvision_resnet', tmp_path / 'src.pth',
                tmp_path / 'out.pth')
    msg = str(err.value)
    assert 'missing in the source (2)' in msg
    assert 'layer2.1.conv3.weight' in msg
    assert 'layer3.0.bn1.running_var' in msg
    assert 'unknown source keys (not used by the conversion) (1)' in msg
    assert 'layer1.0.se.fc1.weight' in msg
    assert 'layer4.2.bn3.bias: msdet has shape (512,)' in msg
    assert 'fc.weight' not in msg  # dropped on purpose, not an error
    assert not osp.exists(tmp_path / 'out.pth')


def test_bad_source_files(tmp_path):
    with pytest.raises(SystemExit, match='not found'):
        convert('torchvision_resnet', tmp_path / 'nope.pth',
                tmp_path / 'out.pth')
    (tmp_path / 'broken.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(SystemExit, match='cannot be read'):
        convert('torchvision_resnet', tmp_path / 'broken.pth',
                tmp_path / 'out.pth')
    torch.save({'epoch': 3, 'arch': 'resnet50'}, tmp_path / 'meta.pth')
    with pytest.raises(ConversionError, match='not a state_dict'):
        load_source(tmp_path / 'meta.pth')


def test_pickled_objects_need_trust(tmp_path, r50_state):
    import argparse
    torch.save({'state_dict': r50_state, 'args': argparse.Namespace(lr=0.1)},
               tmp_path / 'src.pth')
    with pytest.raises(SystemExit, match='--trust-source'):
        convert('torchvision_resnet', tmp_path / 'src.pth',
                tmp_path / 'out.pth')
    meta = convert('torchvision_resnet', tmp_path / 'src.pth',
                   tmp_path / 'out.pth', '--trust-source')
    assert meta['backbone']['type'] == 'PSResNet'


def test_command_line_writes_a_pretrained_checkpoint(tmp_path, r50_state):
    """The real command (subprocess): output written atomically, loadable by
    a config's Pretrained init."""
    import subprocess
    import sys
    torch.save({'state_dict': r50_state}, tmp_path / 'r50.pth')
    out = tmp_path / 'out' / 'ps50.pth'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools/model_converters/'
                                  'torchvision_resnet.py'),
         str(tmp_path / 'r50.pth'), str(out)],
        capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert 'WARM START' in proc.stdout and 'fc.weight, fc.bias' in proc.stdout
    assert os.listdir(out.parent) == ['ps50.pth']  # no temp file left
    ckpt = torch.load(out, weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert not any(k.startswith(('backbone.', 'fc.'))
                   for k in ckpt['state_dict'])
    dst = PSResNet(depth=50, base_channels=16, init_cfg=dict(
        type='Pretrained', checkpoint=str(out)))
    dst.init_weights()
    for k, v in dst.state_dict().items():
        assert torch.equal(v, r50_state[k].float()), k


def test_a_whole_models_checkpoint_is_named(tmp_path, r50_state):
    """Keys under ``backbone.`` (an mmdet detector's checkpoint): the
    conversion fails, naming that cause, and writes nothing."""
    sd = {f'backbone.{k}': v for k, v in r50_state.items()
          if not k.startswith('fc.')}
    sd['neck.lateral_convs.0.conv.weight'] = torch.zeros(8, 64, 1, 1)
    torch.save({'state_dict': sd, 'meta': {}}, tmp_path / 'det.pth')
    with pytest.raises(SystemExit) as err:
        convert('torchvision_resnet', tmp_path / 'det.pth',
                tmp_path / 'out.pth')
    msg = str(err.value)
    assert f"{len(sd) - 1} of the source's {len(sd)} keys start with " \
        "'backbone.'" in msg
    assert "the others: neck." in msg and "whole model's checkpoint" in msg
    assert not osp.exists(tmp_path / 'out.pth')


def test_converter_api_converts_in_memory(r50_state):
    """``Converter.convert``: a state_dict in, the backbone config, its
    tensors and what was dropped out; no file read or written."""
    converter = load_tool('model_converters/torchvision_resnet').CONVERTER
    cfg, state_dict, src = converter.convert(r50_state, None)
    assert cfg == dict(type='PSResNet', depth=50, base_channels=16)
    target = build_target(cfg).state_dict()
    assert list(state_dict) == list(target)
    assert all(torch.equal(state_dict[k], r50_state[k]) for k in target)
    assert list(src.dropped) == ['fc.weight', 'fc.bias']
    with pytest.raises(ConversionError, match="keys start with 'backbone.'"):
        converter.convert({f'backbone.{k}': v
                           for k, v in r50_state.items()}, None)
