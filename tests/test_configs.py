"""Every msdet config loads, follows the paper's 1x recipe and builds; the
config tree is laid out as mmdet's: one folder per design, CPU demos in its
demo/ folder, shared settings in _base_/."""
import ast
import glob
import importlib
import os.path as osp
import re

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')
MAIN_PATH = osp.join(CONFIGS, 'mask_rcnn_psr50_fpn_1x.py')
DESIGNS = ('psconv', 'scalenet', 'elastic', 'mutualnet', 'resizable')
PAPER_CONFIGS = sorted(
    glob.glob(osp.join(CONFIGS, 'psconv', '*_fpn_1x.py'))) + [MAIN_PATH]
ALL_CONFIGS = sorted(
    p for p in glob.glob(osp.join(CONFIGS, '**', '*.py'), recursive=True)
    if '_base_' not in p)
DEMOS = sorted(glob.glob(osp.join(CONFIGS, '*', 'demo', '*.py')))
DETECTORS = {'faster_rcnn': 'FasterRCNN', 'mask_rcnn': 'MaskRCNN',
             'cascade_rcnn': 'CascadeRCNN', 'cascade_mask_rcnn': 'CascadeRCNN'}


def direct_bases(path):
    """The files ``path`` names in ``_base_``: msdet's relative to
    ``configs/``, mmdet's and mmseg's as named (``mmdet::...``)."""
    tree = ast.parse(open(path).read())
    bases = next((ast.literal_eval(node.value) for node in tree.body
                  if isinstance(node, ast.Assign)
                  and node.targets[0].id == '_base_'), [])
    return [b if '::' in b else osp.relpath(
        osp.normpath(osp.join(osp.dirname(path), b)), CONFIGS)
            for b in ([bases] if isinstance(bases, str) else bases)]


def base_files(path):
    """Every file ``path`` inherits, directly or not (mmdet's and mmseg's
    named, not followed)."""
    found = []
    for base in direct_bases(path):
        found.append(base)
        if '::' not in base:
            found += base_files(osp.join(CONFIGS, base))
    return found


def test_layout():
    """One folder per design, every demo in its design's demo/ folder, the
    design studies in study/<study>/; the only config at the top level is
    the main path, which is the PSConv folder's config."""
    for path in ALL_CONFIGS:
        parts = osp.relpath(path, CONFIGS).split(osp.sep)
        if len(parts) == 1:
            assert path == MAIN_PATH
        elif parts[0] == 'study':
            assert len(parts) == 3, path
        else:
            assert parts[0] in DESIGNS and len(parts) <= 3, path
            assert (len(parts) == 3) == (parts[1] == 'demo'), path
    assert {osp.relpath(p, CONFIGS).split(osp.sep)[0] for p in DEMOS} == \
        set(DESIGNS)
    main = Config.fromfile(MAIN_PATH).to_dict()
    assert main == Config.fromfile(
        osp.join(CONFIGS, 'psconv', 'mask_rcnn_psr50_fpn_1x.py')).to_dict()


def test_coco_configs_share_the_base_files():
    """A setting every COCO config shares is written once: each inherits
    mmdet's COCO dataset, schedule and runtime through msdet's files in
    _base_/ (mmdet's files it names itself are model files only)."""
    coco = [p for p in ALL_CONFIGS
            if any(b.startswith('mmdet::') for b in base_files(p))]
    for path in set(ALL_CONFIGS) - set(coco):  # DeepLabv3 on VOC
        assert any(b.startswith('mmseg::') for b in base_files(path)), path
    for path in coco:
        bases = set(base_files(path))
        assert {'_base_/schedules/schedule_1x.py',
                '_base_/default_runtime.py'} <= bases, path
        assert bases & {'_base_/datasets/coco_detection.py',
                        '_base_/datasets/coco_instance.py'}, path
        assert all(b.startswith('mmdet::_base_/models/')
                   for b in direct_bases(path) if '::' in b), path


@pytest.mark.parametrize('path', DEMOS, ids=lambda p: osp.relpath(p, CONFIGS))
def test_detection_demos_share_dataset_and_schedule(path):
    """The COCO CPU demos inherit the embedded dataset, the scaled-down
    detector and the CPU schedule from _base_/; the VOC demo scales its
    DeepLabv3 config down itself."""
    cfg = Config.fromfile(path)
    if cfg.get('default_scope') == 'mmseg':
        assert cfg.train_dataloader.dataset.data_root == \
            'data/voc_demo/VOC2012'
        return
    bases = set(base_files(path))
    detector = cfg.model.get('detector', cfg.model)  # a wrapper's detector
    mask = detector.type == 'MaskRCNN'
    kind = 'instance' if mask else 'detection'
    assert f'_base_/datasets/coco_demo_{kind}.py' in bases
    assert ('_base_/models/'
            f"{'mask' if mask else 'faster'}_rcnn_fpn_cpu_demo.py") in bases
    assert bases & {'_base_/schedules/cpu_demo_12e.py',
                    '_base_/schedules/cpu_demo_24e.py'}
    assert cfg.train_dataloader.dataset.data_root == 'data/coco_demo/'
    assert cfg.val_evaluator.metric == (['bbox', 'segm'] if mask else 'bbox')
    assert detector.backbone.init_cfg is None
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.default_hooks.checkpoint.interval == cfg.train_cfg.max_epochs


def test_paper_detector_grid_is_complete():
    names = {osp.relpath(p, CONFIGS) for p in PAPER_CONFIGS}
    for det in DETECTORS:
        for arch in ('psr50', 'psr101', 'psx101_32x4d'):
            assert f'psconv/{det}_{arch}_fpn_1x.py' in names
    assert 'mask_rcnn_psr50_fpn_1x.py' in names  # the main path


@pytest.mark.parametrize('path', PAPER_CONFIGS,
                         ids=lambda p: osp.relpath(p, CONFIGS))
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


@pytest.mark.parametrize('path', ALL_CONFIGS,
                         ids=lambda p: osp.relpath(p, CONFIGS))
def test_config_builds_without_downloads(path):
    cfg = Config.fromfile(path)
    assert '://' not in cfg.pretty_text  # no URL checkpoint anywhere
    detector = cfg.model.get('detector', cfg.model)  # a wrapper's detector
    detector.backbone.init_cfg = None
    scope = cfg.get('default_scope', 'mmdet')  # mmseg: DeepLabv3
    MODELS = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == detector.backbone.type
    if 'psx101' in path:
        assert model.backbone.layer3[0].conv2.groups == 32


def test_missing_pretrained_file_fails_at_build():
    from mmdet.registry import MODELS
    cfg = Config.fromfile(MAIN_PATH)
    with DefaultScope.overwrite_default_scope('mmdet'), \
            pytest.raises(FileNotFoundError,
                          match='checkpoints/psresnet50_imagenet.pth'):
        MODELS.build(cfg.model)
