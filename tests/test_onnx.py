"""ONNX export (msdet.deploy, tools/deployment/export_onnx.py).

Every backbone type at a small width exports with standard ONNX operators
only and runs in onnxruntime with PyTorch's outputs at two input sizes and
batch sizes (dynamic axes), switchable ones at two sub-networks each; a
detector's features + RPN outputs and its RoI head, and a segmentor's
logits, go through the tool with --verify; a part that cannot be exported
is one error naming it, and nothing is written."""
import os

import pytest

pytest.importorskip('onnx', reason="ONNX export needs onnx and onnxruntime: "
                    "pip install 'msdet[deploy]' (tools/install.sh installs "
                    'both)')
pytest.importorskip('onnxruntime', reason="ONNX export needs onnx and "
                    "onnxruntime: pip install 'msdet[deploy]' "
                    '(tools/install.sh installs both)')

import importlib  # noqa: E402
import os.path as osp  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS  # noqa: E402

import msdet  # noqa: E402,F401
from msdet.deploy import build_part, export_onnx, require  # noqa: E402
from msdet.deploy.model import random_images  # noqa: E402
from msdet.deploy.parts import BackbonePart  # noqa: E402
from msdet.deploy.verify import compare, session  # noqa: E402
from msdet.ops import set_subnet  # noqa: E402
from msdet.ops.feature_resize import feature_resize  # noqa: E402
from msdet.datasets.synthetic_coco import make_coco_dataset  # noqa: E402
from bench.onnx import random_bn_statistics  # noqa: E402
from conftest import REPO, load_tool, working_dir  # noqa: E402

#: float32 through two runtimes; observed errors are about 1e-6
TOL = 1e-5


class Bare(nn.Module):
    """A backbone alone as the model of an export part."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def extract_feat(self, x):
        return self.backbone(x)


def randomized_bn(model):
    """Non-trivial BN statistics (a fresh BN is the identity in eval)."""
    random_bn_statistics(model)
    return model


def exported(tmp_path, module, size, other_size):
    """``module`` (a backbone) exported with dynamic axes at ``size`` (the
    graph checked to be the same at ``other_size``) and its session."""
    model = Bare(module)
    model.eval()
    randomized_bn(model)
    part = BackbonePart(model)
    path = str(tmp_path / 'model.onnx')
    proto = export_onnx(part, (random_images(size), ), path, dynamic=True,
                        other_inputs=(random_images(other_size, 2, 1), ))
    assert {n.domain for n in proto.graph.node} <= {'', 'ai.onnx'}
    return part, session(path, threads=1)


# small widths; sizes: ScaleNet's graph needs every pooling window (up to 7
# on the stride-32 map of the seed structure) to fit its map
BACKBONES = {
    'PSResNet': (dict(depth=50, base_channels=16), [{}], (72, 104)),
    'PSResNeXt': (dict(depth=50, base_channels=16, groups=4, base_width=4),
                  [{}], (72, 104)),
    'ScaleNet': (dict(depth=50, structure=dict(seed=4), base_channels=16),
                 [{}], (224, 256)),
    'ElasticResNeXt': (dict(depth=50, groups=8, base_channels=16), [{}],
                       (72, 104)),
    'SlimmableVGG': (dict(depth=11, base_channels=16),
                     [dict(width=1.0), dict(width=0.375)], (72, 104)),
    'ResizableResNet': (dict(depth=50, base_channels=16),
                        [dict(resize1=1.0, resize2=1.0, resize3=1.0,
                              resize4=1.0),
                         dict(resize1=0.5, resize2=0.875, resize3=0.625,
                              resize4=0.75)], (72, 104)),
}
CASES = [(name, i) for name, (_, subnets, _) in BACKBONES.items()
         for i in range(len(subnets))]


@pytest.mark.parametrize('name,index', CASES,
                         ids=[f'{n}-subnet{i}' for n, i in CASES])
def test_backbone_matches_pytorch_at_two_sizes(tmp_path, name, index):
    kwargs, subnets, (h, w) = BACKBONES[name]
    torch.manual_seed(0)
    backbone = MODELS.build(dict(type=name, **kwargs))
    if subnets[index]:
        set_subnet(backbone, **subnets[index])
    other = (h + 24, w - 8)  # another aspect, a batch of 2
    part, sess = exported(tmp_path, backbone, (h, w), other)
    for images in (random_images((h, w)), random_images(other, 2, 1)):
        err, output = compare(part, sess, (images, ))
        assert err < TOL, (name, images.shape, output, err)


def test_resized_sizes_are_computed_in_the_graph(tmp_path):
    """G(x; s)'s rounded sizes (double product, round half to even, at
    least 1) follow the input in the graph exactly as in PyTorch, also for a
    factor that is not a binary fraction."""

    class Resize(nn.Module):

        def forward(self, x):
            return tuple(feature_resize(x, s) for s in (0.3, 0.5, 0.875))

    part, sess = exported(tmp_path, Resize(), (10, 12), (15, 7))
    for h, w in [(1, 1), (2, 3), (5, 15), (25, 35), (37, 41)]:
        x = torch.randn(1, 3, h, w)
        outs = sess.run(None, {'input': x.numpy()})
        refs = Resize()(x)
        assert [o.shape for o in outs] == [tuple(r.shape) for r in refs]
        for out, ref in zip(outs, refs):  # bilinear weights: float noise
            np.testing.assert_allclose(out, ref.numpy(), atol=1e-4)


def test_size_dependent_graph_is_refused_naming_the_module(tmp_path):

    class Baked(nn.Module):  # a size read into Python: frozen by a trace

        def forward(self, x):
            h, w = (int(v) for v in x.shape[-2:])
            return F.interpolate(x, size=(h // 2, w // 2), mode='bilinear')

    model = Bare(Baked())
    part = BackbonePart(model)
    path = tmp_path / 'baked.onnx'
    with pytest.raises(ValueError, match=r'not the same at another input '
                       r'size, from backbone \(Baked\)'):
        export_onnx(part, (random_images((32, 48)), ), str(path),
                    other_inputs=(random_images((40, 48), 2), ))
    assert os.listdir(tmp_path) == []
    export_onnx(part, (random_images((32, 48)), ), str(path), dynamic=False)
    assert path.is_file()


def test_custom_operator_is_refused_naming_the_part(tmp_path):
    backbone = MODELS.build(dict(
        type='ElasticResNeXt', depth=50, groups=8, base_channels=16,
        elastic=False, stage_with_dcn=(False, False, True, False),
        dcn=dict(type='DCN', deform_groups=1, fallback_on_stride=False)))
    backbone.eval()
    part = BackbonePart(Bare(backbone))
    with pytest.raises(ValueError, match=r'^backbone\.layer3\.0\.conv2 '
                       r'\(DeformConv2dPack\) exports as mmcv::'):
        export_onnx(part, (random_images((64, 64)), ),
                    str(tmp_path / 'dcn.onnx'), dynamic=False)
    assert os.listdir(tmp_path) == []


def test_scalenet_below_its_pooling_windows_is_refused_naming_the_block(
        tmp_path):
    """At 64x64 the stride-16 map (4x4) is smaller than the scale-7 window,
    which msdet then takes from the input size: not an ONNX constant."""
    backbone = MODELS.build(dict(type='ScaleNet', **BACKBONES['ScaleNet'][0]))
    backbone.eval()
    with pytest.raises(RuntimeError, match=r'^ONNX export failed in '
                       r'backbone\.layer3\.0\.conv2 \(ScaleAggregation\): an '
                       'argument that the ONNX operator needs as a constant'):
        export_onnx(BackbonePart(Bare(backbone)), (random_images((64, 64)), ),
                    str(tmp_path / 'sn.onnx'))
    assert os.listdir(tmp_path) == []


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)
    with pytest.raises(ModuleNotFoundError, match=r"needs onnxruntime, which "
                       r"is not installed: pip install 'msdet\[deploy\]'"):
        require('onnxruntime')


# --- the tool ---------------------------------------------------------------

PSR_DEMO = osp.join(REPO, 'configs/psconv/demo/mask_rcnn_psr50_fpn_demo.py')
VGG_DEMO = osp.join(REPO,
                    'configs/mutualnet/demo/mask_rcnn_slimvgg16_fpn_demo.py')
SEG_DEMO = osp.join(REPO, 'configs/elastic/demo/deeplabv3_ex50_voc_demo.py')


def checkpoint(config, path):
    """A checkpoint of ``config``'s model (initial weights, random BN
    statistics), as tools/train.py's would hold it."""
    cfg = Config.fromfile(config)
    scope = cfg.get('default_scope', 'mmdet')
    importlib.import_module(f'{scope}.utils').register_all_modules(True)
    torch.manual_seed(0)
    model = importlib.import_module(f'{scope}.registry').MODELS.build(
        cfg.model)
    model.init_weights()
    torch.save({'state_dict': randomized_bn(model).state_dict(),
                'meta': {}}, path)
    return str(path)


@pytest.fixture(scope='module')
def psr_checkpoint(tmp_path_factory):
    return checkpoint(PSR_DEMO, tmp_path_factory.mktemp('psr') / 'psr.pth')


def run_tool_main(*args):
    return load_tool('deployment/export_onnx').main([str(a) for a in args])


VERIFY = ('--verify', '--threads', 1, '--repeat', 1)


def test_detector_features_and_rpn_through_the_tool(tmp_path, psr_checkpoint,
                                                     capsys):
    out = tmp_path / 'det.onnx'
    result = run_tool_main(PSR_DEMO, psr_checkpoint, '--out', out,
                           '--shape', 96, 128, *VERIFY)
    text = capsys.readouterr().out
    assert 'MaskRCNN: PSResNet + FPN + RPNHead' in text
    assert 'rpn_cls_score4, rpn_bbox_pred0' in text
    assert set(result['errors']) == {'random', 'image', 'random, other size'}
    assert max(result['errors'].values()) < TOL
    assert set(result['latency_ms']) == {'torch', 'onnxruntime'}


def test_roi_head_through_the_tool(tmp_path, psr_checkpoint, capsys):
    out = tmp_path / 'roi.onnx'
    result = run_tool_main(PSR_DEMO, psr_checkpoint, '--out', out, '--part',
                           'roi_head', '--shape', 96, 128, *VERIFY)
    text = capsys.readouterr().out
    assert 'Shared2FCBBoxHead + FCNMaskHead on given RoIs' in text
    assert 'outputs: cls_score, bbox_pred, mask_pred' in text
    assert max(result['errors'].values()) < TOL


def test_segmentor_through_the_tool(tmp_path, capsys):
    ckpt = checkpoint(SEG_DEMO, tmp_path / 'seg.pth')
    result = run_tool_main(SEG_DEMO, ckpt, '--out', tmp_path / 'seg.onnx',
                           '--shape', 72, 88, *VERIFY)
    assert 'EncoderDecoder: ElasticResNeXt + ElasticASPPHead' in \
        capsys.readouterr().out
    assert max(result['errors'].values()) < TOL


def test_subnet_through_the_tool(tmp_path, capsys):
    """A slimmable model at width 0.5, its shared BNs re-estimated for that
    width on training images of the embedded dataset."""
    ckpt = checkpoint(VGG_DEMO, tmp_path / 'vgg.pth')
    out = tmp_path / 'vgg.onnx'
    with pytest.raises(ValueError, match=r'width=2\.0 is out of range; '
                       r'allowed: \[0\.25, 1\.0\]'):
        run_tool_main(VGG_DEMO, ckpt, '--out', out, '--subnet', 'width=2')
    with pytest.raises(ValueError, match="--subnet 'width': allowed: "
                       'key=number'):
        run_tool_main(VGG_DEMO, ckpt, '--out', out, '--subnet', 'width')
    assert not out.exists()
    make_coco_dataset(str(tmp_path / 'data/coco_demo'), num_train=2,
                      num_val=1)
    with working_dir(tmp_path):
        result = run_tool_main(VGG_DEMO, ckpt, '--out', out, '--subnet',
                               'width=0.5', '--recalibrate-bn', 2, '--part',
                               'backbone', '--shape', 64, 96, *VERIFY)
    text = capsys.readouterr().out
    assert 'sub-network: width=0.5' in text
    assert 'BN statistics re-estimated on 2 training images' in text
    assert max(result['errors'].values()) < TOL


def test_verify_reports_a_difference(tmp_path):
    """The weights change after the export: --verify's comparison fails
    with the input, the error and the output named."""
    from argparse import Namespace

    from mmdet.models.data_preprocessors import DetDataPreprocessor
    model = Bare(MODELS.build(dict(type='SlimmableVGG', depth=11,
                                   base_channels=8)))
    model.data_preprocessor = DetDataPreprocessor(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
    model.eval()
    part = BackbonePart(model)
    path = str(tmp_path / 'vgg.onnx')
    inputs = (random_images((32, 48)), )
    export_onnx(part, inputs, path, dynamic=False)
    with torch.no_grad():
        model.backbone.features[0].bias.add_(1.0)
    args = Namespace(out=path, threads=1, image=None, part='backbone',
                     repeat=1)
    with pytest.raises(ValueError, match=r'vgg\.onnx: onnxruntime differs '
                       r'from PyTorch on the random input \(1x3x32x48\): max '
                       r'relative error .* in feat\d, allowed 0\.0001\.'):
        load_tool('deployment/export_onnx').verify(args, model, part, inputs,
                                                   None, (32, 48))


def test_unexportable_parts_are_one_error_each(tmp_path, psr_checkpoint):
    path = tmp_path / 'cascade.py'
    path.write_text(
        "_base_ = 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'\n")
    cfg = Config.fromfile(str(path))
    cfg.model.backbone = dict(type='PSResNet', depth=50, base_channels=16)
    cfg.model.neck.update(in_channels=[64, 128, 256, 512], out_channels=32)
    cfg.model.rpn_head.update(in_channels=32, feat_channels=32)
    cfg.model.roi_head.bbox_roi_extractor.out_channels = 32
    for head in cfg.model.roi_head.bbox_head:
        head.update(in_channels=32, fc_out_channels=32)
    importlib.import_module('mmdet.utils').register_all_modules(True)
    cascade = importlib.import_module('mmdet.registry').MODELS.build(
        cfg.model)
    with pytest.raises(ValueError, match='CascadeRCNN: roi_head '
                       'CascadeRoIHead is not exportable'):
        build_part(cascade, 'roi_head')
    assert build_part(cascade, 'model').head is cascade.rpn_head

    seg = checkpoint(SEG_DEMO, tmp_path / 'seg.pth')
    out = tmp_path / 'x.onnx'
    with pytest.raises(ValueError, match='EncoderDecoder: part=roi_head '
                       'needs a two-stage detector'):
        run_tool_main(SEG_DEMO, seg, '--out', out, '--part', 'roi_head')
    with pytest.raises(ValueError, match='must end with .onnx'):
        run_tool_main(PSR_DEMO, psr_checkpoint, '--out', tmp_path / 'x.pt')
    assert not out.exists()
