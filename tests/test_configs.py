"""Every msdet config loads, follows the paper's 1x recipe and builds."""
import glob
import importlib
import os.path as osp
import re

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PAPER_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*.py')))
ALL_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                               recursive=True))
DETECTORS = {'faster_rcnn': 'FasterRCNN', 'mask_rcnn': 'MaskRCNN',
             'cascade_rcnn': 'CascadeRCNN', 'cascade_mask_rcnn': 'CascadeRCNN'}


def test_paper_detector_grid_is_complete():
    names = {osp.basename(p) for p in PAPER_CONFIGS}
    for det in DETECTORS:
        for arch in ('psr50', 'psr101', 'psx101_32x4d'):
            assert f'{det}_{arch}_fpn_1x.py' in names
    assert 'mask_rcnn_psr50_fpn_1x.py' in names  # the main path


@pytest.mark.parametrize('path', PAPER_CONFIGS, ids=osp.basename)
def test_paper_config_follows_1x_recipe(path):
    cfg = Config.fromfile(path)
    assert 'msdet' in cfg.custom_imports.imports
    assert cfg.train_cfg.max_epochs == 12
    assert cfg.optim_wrapper.optimizer.type == 'SGD'
    assert cfg.optim_wrapper.optimizer.lr == 0.02
    assert cfg.auto_scale_lr.base_batch_size == 16
    steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR']
    assert steps[0].milestones == [8, 11]
    resize = [t for t in cfg.train_dataloader.dataset.pipeline
              if t.type == 'Resize'][0]
    assert resize.scale == (1333, 800)
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    name = osp.basename(path)
    det = re.match(r'(.+)_ps[rx]', name).group(1)
    assert cfg.model.type == DETECTORS[det]
    bb = cfg.model.backbone
    if '_psx101_32x4d' in name:
        assert (bb.type, bb.depth, bb.groups, bb.base_width) == \
            ('PSResNeXt', 101, 32, 4)
    else:
        assert (bb.type, bb.depth) == \
            ('PSResNet', int(re.search(r'psr(\d+)', name).group(1)))
    assert bb.init_cfg.type == 'Pretrained'
    assert not bb.init_cfg.checkpoint.startswith(('torchvision', 'http',
                                                  'open-mmlab'))


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=osp.basename)
def test_config_builds_without_downloads(path):
    cfg = Config.fromfile(path)
    assert '://' not in cfg.pretty_text  # no URL checkpoint anywhere
    detector = cfg.model.get('detector', cfg.model)  # a wrapper's detector
    detector.backbone.init_cfg = None
    scope = cfg.get('default_scope', 'mmdet')  # mmseg for configs/deeplabv3
    MODELS = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == detector.backbone.type
    if 'psx101' in path:
        assert model.backbone.layer3[0].conv2.groups == 32


def test_missing_pretrained_file_fails_at_build():
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs/mask_rcnn_psr50_fpn_1x.py'))
    with DefaultScope.overwrite_default_scope('mmdet'), \
            pytest.raises(FileNotFoundError,
                          match='checkpoints/psresnet50_imagenet.pth'):
        MODELS.build(cfg.model)
