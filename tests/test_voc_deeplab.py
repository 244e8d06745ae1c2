"""The synthetic VOC-format dataset, mmseg reading it, and a short DeepLabv3 +
Elastic-ResNeXt run on CPU that beats the single-class baseline."""
import filecmp
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from msdet.datasets.synthetic_voc import (IGNORE_INDEX, VOC_CLASSES,
                                          make_voc_dataset, single_class_miou,
                                          voc_palette)
from conftest import RUNTIME_COMPONENTS, load_tool, working_dir

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CFG = osp.join(REPO, 'configs/elastic/demo/deeplabv3_ex50_voc_demo.py')


def read_label(path):
    return np.asarray(Image.open(path))


def test_layout_palette_and_labels(tmp_path):
    s = make_voc_dataset(tmp_path, num_train=3, num_val=2, num_classes=3,
                         image_size=(61, 47))
    root = tmp_path / 'VOC2012'
    assert s['data_root'] == str(root)
    assert s['classes'] == list(VOC_CLASSES[:4])
    split_dir = root / 'ImageSets/Segmentation'
    train = split_dir.joinpath('train.txt').read_text().split()
    val = split_dir.joinpath('val.txt').read_text().split()
    assert len(train) == 3 and len(val) == 2
    assert split_dir.joinpath('trainval.txt').read_text().split() == \
        train + val
    pixels = np.zeros(4, dtype=np.int64)
    for name in val:
        img = Image.open(root / 'JPEGImages' / f'{name}.jpg')
        label = Image.open(root / 'SegmentationClass' / f'{name}.png')
        assert img.mode == 'RGB' and img.size == (61, 47)
        assert label.mode == 'P' and label.size == (61, 47)
        palette = np.array(label.getpalette()).reshape(-1, 3)
        assert np.array_equal(palette[:256], voc_palette())
        assert tuple(palette[1]) == (128, 0, 0)  # VOC 'aeroplane'
        arr = np.asarray(label)
        assert set(np.unique(arr)) <= {0, 1, 2, 3, IGNORE_INDEX}
        pixels += np.bincount(arr[arr != IGNORE_INDEX], minlength=4)
    assert pixels.tolist() == s['val']['class_pixels']


def test_objects_have_their_class_color_and_ignored_contours(tmp_path):
    make_voc_dataset(tmp_path, num_train=1, num_val=1, boundary=1)
    root = tmp_path / 'VOC2012'
    img = np.asarray(Image.open(root / 'JPEGImages/train_000000.jpg'),
                     dtype=np.float64)
    label = read_label(root / 'SegmentationClass/train_000000.png')
    fg = (label > 0) & (label != IGNORE_INDEX)
    assert fg.any() and (label == IGNORE_INDEX).any()
    # an ignore band separates every object pixel from the background
    bg = label == 0
    assert not (fg[1:] & bg[:-1]).any() and not (fg[:, 1:] & bg[:, :-1]).any()
    # objects are saturated colours, the background is grey
    sat = img.max(axis=2) - img.min(axis=2)
    assert sat[fg].mean() > 3 * sat[bg].mean()


def test_deterministic_and_independent_of_count(tmp_path):
    make_voc_dataset(tmp_path / 'a', num_train=3, num_val=1, seed=5)
    make_voc_dataset(tmp_path / 'b', num_train=3, num_val=1, seed=5)
    make_voc_dataset(tmp_path / 'c', num_train=1, num_val=1, seed=5)
    make_voc_dataset(tmp_path / 'd', num_train=1, num_val=1, seed=6)
    rel = 'VOC2012/SegmentationClass/train_000000.png'
    for sub in ('JPEGImages/train_000002.jpg', 'SegmentationClass/'
                'train_000002.png', 'ImageSets/Segmentation/train.txt'):
        assert filecmp.cmp(tmp_path / 'a/VOC2012' / sub,
                           tmp_path / 'b/VOC2012' / sub, shallow=False)
    assert filecmp.cmp(tmp_path / 'a' / rel, tmp_path / 'c' / rel,
                       shallow=False)
    assert not np.array_equal(read_label(tmp_path / 'a' / rel),
                              read_label(tmp_path / 'd' / rel))
    leftovers = [f for _, _, fs in os.walk(tmp_path) for f in fs
                 if f.startswith('.')]
    assert not leftovers  # atomic writes leave no temp files


@pytest.mark.parametrize('kwargs,match', [
    (dict(num_train=0), 'num_train=0'),
    (dict(num_val=1.5), 'num_val=1.5'),
    (dict(image_size=(16, 64)), r'image_size\[0\] \(width\)=16'),
    (dict(image_size=64), 'image_size=64'),
    (dict(num_classes=21), r'num_classes=21; allowed: an integer in 1..20'),
    (dict(seed=-1), 'seed=-1'),
    (dict(min_objects=3, max_objects=2), 'max_objects=2'),
    (dict(boundary=True), 'boundary=True'),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_voc_dataset(tmp_path, **kwargs)


def test_cli(tmp_path, capsys):
    tool = load_tool('make_voc_demo')
    assert tool.main([str(tmp_path), '--num-train', '2', '--num-val', '1',
                      '--image-size', '48', '40']) == 0
    out = capsys.readouterr().out
    assert 'single-class baseline mIoU' in out
    assert len(list((tmp_path / 'VOC2012/JPEGImages').iterdir())) == 3
    with pytest.raises(ValueError, match='num_classes=0'):  # run_tool's
        tool.main([str(tmp_path), '--num-classes', '0'])  # one message


def test_single_class_baseline_is_iou_metric_of_a_constant_prediction(
        tmp_path):
    """The baseline formula equals mmseg's IoUMetric on an all-background
    (the majority class) prediction over the val split."""
    from mmseg.evaluation import IoUMetric
    s = make_voc_dataset(tmp_path, num_train=1, num_val=4)
    metric = IoUMetric()
    metric.dataset_meta = dict(classes=s['classes'])
    root = tmp_path / 'VOC2012'
    for name in (root / 'ImageSets/Segmentation/val.txt').read_text().split():
        gt = torch.from_numpy(read_label(
            root / 'SegmentationClass' / f'{name}.png').astype(np.int64))
        metric.process([], [dict(pred_sem_seg=dict(data=torch.zeros_like(gt)),
                                 gt_sem_seg=dict(data=gt))])
    miou = metric.compute_metrics(metric.results)['mIoU']
    assert miou == pytest.approx(
        single_class_miou(s['val']['class_pixels']), abs=0.01)


@pytest.fixture(scope='module')
def voc_workdir(tmp_path_factory):
    """The embedded dataset at ./data/voc_demo, where the demo config looks;
    tests run with this directory as the working directory."""
    root = tmp_path_factory.mktemp('voc_demo')
    summary = make_voc_dataset(root / 'data/voc_demo', num_train=48,
                               num_val=12)
    with working_dir(root):
        yield root, summary


def test_mmseg_pascal_voc_dataset_reads_it(voc_workdir):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS
    root, summary = voc_workdir
    cfg = Config.fromfile(DEMO_CFG)
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = DATASETS.build(cfg.val_dataloader.dataset)
    assert len(dataset) == 12
    item = dataset[3]
    name = osp.splitext(osp.basename(item['data_samples'].img_path))[0]
    gt = item['data_samples'].gt_sem_seg.data[0].numpy()
    png = read_label(root / 'data/voc_demo/VOC2012/SegmentationClass' /
                     f'{name}.png')
    assert np.array_equal(gt, png)  # palette indices are the class ids
    assert item['inputs'].shape[1:] == (120, 160)
    assert dataset.metainfo['classes'] == tuple(summary['classes'])


def test_short_deeplabv3_run_beats_single_class_baseline(voc_workdir):
    """msdet's tools/train.py trains the demo config (DeepLabv3 ASPP on
    Elastic-ResNeXt-50, OS16 + multi-grid) from scratch, here at 1/8 width
    (4 groups, base_channels=8) for 200 iterations to stay fast;
    tools/test.py then evaluates the saved checkpoint with mmseg's
    IoUMetric: far above predicting the majority class everywhere."""
    _, summary = voc_workdir
    iters = 200
    small = ['model.backbone.groups=4', 'model.backbone.base_channels=8',
             'model.decode_head.in_channels=256']
    runner = load_tool('train').main([
        DEMO_CFG, '--work-dir', 'wd', '--cfg-options', *small,
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters + 1}',
        f'param_scheduler.0.end={iters}', 'randomness.seed=0'
    ])
    assert type(runner.model.backbone).__name__ == 'ElasticResNeXt'
    assert type(runner.model.decode_head).__name__ == 'ElasticASPPHead'
    metrics = load_tool('test').main([
        DEMO_CFG, f'wd/iter_{iters}.pth', '--work-dir', 'wd_test',
        '--cfg-options', *small
    ])
    saved = json.loads(open('wd_test/metrics.json').read())
    assert saved['mIoU'] == pytest.approx(metrics['mIoU'])
    baseline = single_class_miou(summary['val']['class_pixels'])
    assert baseline < 25
    assert metrics['mIoU'] > max(2 * baseline, baseline + 25), \
        (metrics, baseline)


@pytest.mark.parametrize('design,name,backbone,depth,elastic', [
    ('elastic', 'ex50_32x4d', 'ElasticResNeXt', 50, True),
    ('elastic', 'x50_32x4d', 'ElasticResNeXt', 50, False),
    ('elastic', 'ex101_32x4d', 'ElasticResNeXt', 101, True),
    ('elastic', 'x101_32x4d', 'ElasticResNeXt', 101, False),
    ('psconv', 'psr50', 'PSResNet', 50, None),
])
def test_deeplabv3_configs_follow_paper_recipe(design, name, backbone, depth,
                                               elastic):
    """ELASTIC 4.3 / DeepLabv3 as the release trains it: OS16 (+ multi-grid),
    the release's ASPP (6, 12, 18) with image pooling, loss over labelled
    pixels, batch 16, 50 epochs of VOC aug, wd 5e-4 for ResNeXt."""
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(REPO, f'configs/{design}/deeplabv3_{name}_os16_'
                 'voc12aug.py'))
    assert cfg.default_scope == 'mmseg' and 'msdet' in \
        cfg.custom_imports.imports
    bb = cfg.model.backbone
    assert (bb.type, bb.depth) == (backbone, depth)
    assert (bb.strides, bb.dilations) == ((1, 2, 2, 1), (1, 1, 1, 2))
    assert bb.norm_eval is False and bb.init_cfg.type == 'Pretrained'
    assert osp.basename(bb.init_cfg.checkpoint).endswith('_imagenet.pth')
    if backbone == 'ElasticResNeXt':
        assert (bb.groups, bb.base_width, bb.elastic) == (32, 4, elastic)
        assert bb.multi_grid == (1, 2, 4)
    head = cfg.model.decode_head
    assert (head.type, head.dilations, head.channels) == \
        ('ElasticASPPHead', (1, 6, 12, 18), 256)
    assert head.loss_decode.avg_non_ignore and head.dropout_ratio == 0
    assert head.norm_cfg.momentum == 0.0003
    assert head.num_classes == 21 and cfg.model.auxiliary_head is None
    loader = cfg.train_dataloader
    assert loader.batch_size * 4 == 16  # 4 GPUs
    assert [d.ann_file for d in loader.dataset.datasets] == [
        'ImageSets/Segmentation/train.txt', 'ImageSets/Segmentation/aug.txt']
    assert cfg.train_cfg.max_iters == 50 * -(-10582 // 16)  # 662 / epoch
    assert cfg.param_scheduler[0].type == 'PolyLR'
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr) == ('SGD', 0.007)
    assert optimizer.weight_decay == (1e-4 if backbone == 'PSResNet' else
                                      5e-4)
    assert cfg.val_dataloader.dataset.data_root == 'data/VOCdevkit/VOC2012'
    assert cfg.val_evaluator.type == 'IoUMetric'
    val = [t.type for t in cfg.val_dataloader.dataset.pipeline]
    assert 'Resize' not in val and 'CenterPad' in val
    train = [t.type for t in loader.dataset.datasets[0].pipeline]
    assert train[2:5] == ['RandomLogRescale', 'CenterPad', 'RandomCrop']


def test_msdet_components_in_a_segmentation_run(voc_workdir):
    """An mmseg iteration-based run with msdet's checkpoint hooks: whole
    checkpoints with RNG states, and tools/test.py refusing the checkpoint
    of a model with another number of classes."""
    root, _ = voc_workdir
    (root / 'seg.py').write_text(f'_base_ = {DEMO_CFG!r}\n' +
                                 RUNTIME_COMPONENTS)
    small = ['model.backbone.groups=4', 'model.backbone.base_channels=8',
             'model.decode_head.in_channels=256']
    load_tool('train').main([
        'seg.py', '--work-dir', 'wd_seg', '--cfg-options', *small,
        'train_cfg.max_iters=2', 'train_cfg.val_interval=3',
        'default_hooks.checkpoint.interval=1'])
    assert open('wd_seg/last_checkpoint').read().endswith('wd_seg/iter_2.pth')
    ckpt = torch.load('wd_seg/iter_2.pth', weights_only=False)
    assert len(ckpt['rng_state']) == 1 and ckpt['meta']['iter'] == 2
    with pytest.raises(ValueError, match=r"checkpoint 'wd_seg/iter_2.pth' "
                       r'does not fit this EncoderDecoder: .* other shapes '
                       r"\(e.g. 'decode_head.conv_seg.weight': \(5, "):
        load_tool('test').main(['seg.py', 'wd_seg/iter_2.pth', '--cfg-options',
                                *small, 'model.decode_head.num_classes=3'])
