"""Pretrained loading of msdet's backbones (init_cfg=dict(type='Pretrained')):
a checkpoint loads only if it fits the backbone, else one clear error."""
import re

import pytest
import torch
from mmengine.registry import MODELS

import msdet  # noqa: F401  (registers the backbones)

SMALL = {
    'PSResNet': dict(depth=50, base_channels=16),
    'PSResNeXt': dict(depth=50, base_channels=16, groups=4, base_width=4),
    'ScaleNet': dict(depth=50, structure=dict(seed=4), base_channels=16),
    'ElasticResNeXt': dict(depth=50, groups=8, base_channels=16),
    'ResizableResNet': dict(depth=50, base_channels=16,
                            resize_factors=[0.5, 1.0]),
    'SlimmableVGG': dict(depth=11, base_channels=8),
}


def build(type_name, checkpoint=None, **kwargs):
    cfg = dict(type=type_name, **SMALL[type_name], **kwargs)
    if checkpoint is not None:
        cfg['init_cfg'] = dict(type='Pretrained', checkpoint=str(checkpoint))
    return MODELS.build(cfg)


def randomized(model):
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model


@pytest.mark.parametrize('type_name', sorted(SMALL))
def test_own_checkpoint_loads_every_tensor(tmp_path, type_name):
    src = randomized(build(type_name))
    path = tmp_path / 'backbone.pth'
    torch.save({'state_dict': src.state_dict(), 'meta': {}}, path)
    dst = build(type_name, path)
    dst.init_weights()
    want = src.state_dict()
    got = dst.state_dict()
    assert list(got) == list(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key


@pytest.mark.parametrize('type_name', sorted(SMALL))
def test_detector_checkpoint_is_refused_naming_the_prefix(tmp_path,
                                                          type_name):
    src = randomized(build(type_name))
    det = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    det['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(81, 1024)
    path = tmp_path / 'mask_rcnn.pth'
    torch.save({'state_dict': det}, path)
    n = len(src.state_dict())
    dst = build(type_name, path)
    with pytest.raises(ValueError, match=(
            rf"^{type_name}: checkpoint '.*mask_rcnn.pth' fills 0 of the "
            rf"backbone's {n} tensors \(fewer than half\); its keys start "
            r"with 'backbone.'.*prefix='backbone.'")):
        dst.init_weights()
    # the way the message gives: mmengine's prefix option
    dst = MODELS.build(dict(type=type_name, **SMALL[type_name], init_cfg=dict(
        type='Pretrained', prefix='backbone.', checkpoint=str(path))))
    dst.init_weights()
    for key, value in src.state_dict().items():
        assert torch.equal(dst.state_dict()[key], value), key


def test_another_architecture_is_refused_with_the_count(tmp_path):
    vgg = build('SlimmableVGG')
    path = tmp_path / 'vgg.pth'
    torch.save({'state_dict': vgg.state_dict()}, path)
    ps = build('PSResNet', path)
    before = {k: v.clone() for k, v in ps.state_dict().items()}
    with pytest.raises(ValueError, match=(
            r"^PSResNet: checkpoint '.*vgg.pth' fills 0 of the backbone's "
            rf"{len(before)} tensors \(fewer than half\); it holds another "
            r"architecture \(e.g. \['features.0.weight'.*this PSResNet has "
            r"e.g. \['conv1.weight'.*tools/model_converters/")):
        ps.init_weights()
    # nothing was loaded
    assert all(torch.equal(before[k], v) for k, v in ps.state_dict().items())


@pytest.mark.parametrize('type_name', ['ScaleNet', 'SlimmableVGG'])
def test_shape_mismatch_names_the_first_key(tmp_path, type_name):
    state = build(type_name).state_dict()
    first = next(iter(state))
    full = tuple(state[first].shape)
    state[first] = state[first][:1]
    path = tmp_path / 'narrow.pth'
    torch.save({'state_dict': state}, path)
    with pytest.raises(ValueError, match=re.escape(
            f"{type_name}: checkpoint tensor '{first}' has shape "
            f'{(1, ) + full[1:]}, the model expects {full}: ') +
                       r".*narrow.pth' does not fit .*first mismatching key"):
        build(type_name, path).init_weights()


def test_data_parallel_prefix_partial_checkpoint_and_other_inits(tmp_path):
    src = randomized(build('PSResNet'))
    state = {f'module.{k}': v for k, v in src.state_dict().items()
             if not k.startswith('layer4.')}  # more than half remains
    path = tmp_path / 'dp.pth'
    torch.save(state, path)
    dst = MODELS.build(dict(type='PSResNet', **SMALL['PSResNet'], init_cfg=[
        dict(type='Constant', val=0.5, layer='Conv2d'),
        dict(type='Pretrained', checkpoint=str(path))]))
    dst.init_weights()
    got = dst.state_dict()
    assert torch.equal(got['layer3.5.conv2.weight'],
                       src.state_dict()['layer3.5.conv2.weight'])
    # the other init config ran first; the checkpoint does not cover layer4
    assert (got['layer4.0.conv1.weight'] == 0.5).all()


def test_psconv_layout_record_checked_on_pretrained_load(tmp_path):
    src = build('PSResNet')
    state = src.state_dict()
    state._metadata['layer1.0.conv2']['version'] = 3
    path = tmp_path / 'other_layout.pth'
    torch.save({'state_dict': state}, path)
    with pytest.raises(ValueError, match=r"PSConv layer1.0.conv2: the "
                       r"checkpoint records weight layout 'unknown' "
                       r"\(state_dict version 3\), this PSConv stores "
                       r"layout 'blocks'"):
        build('PSResNet', path).init_weights()


def test_layout_record_follows_the_prefix_and_bad_prefixes_are_named(
        tmp_path):
    src = build('PSResNet')
    state = src.state_dict()
    det = type(state)((f'backbone.{k}', v) for k, v in state.items())
    det._metadata = type(state._metadata)(
        (f'backbone.{k}' if k else 'backbone', v)
        for k, v in state._metadata.items())
    det._metadata['backbone.layer2.1.conv2']['version'] = 3
    path = tmp_path / 'detector.pth'
    torch.save({'state_dict': det}, path)

    def load(prefix):
        return MODELS.build(dict(type='PSResNet', **SMALL['PSResNet'],
                                 init_cfg=dict(type='Pretrained',
                                               prefix=prefix,
                                               checkpoint=str(path))))

    with pytest.raises(ValueError, match=r"PSConv layer2.1.conv2: the "
                       r"checkpoint records weight layout 'unknown'"):
        load('backbone').init_weights()  # the dot is optional, as mmengine's
    with pytest.raises(ValueError, match=(
            r"^PSResNet: checkpoint '.*detector.pth' has no key starting "
            r"with the init_cfg prefix 'model.' \(e.g. \['backbone.conv1")):
        load('model.').init_weights()
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match=r"^PSResNet: checkpoint "
                       r"'.*detector.pth' holds a list, not a state dict\."):
        build('PSResNet', path).init_weights()
