"""Accuracy across scale: numbers equal COCOeval's, the sweep and its report."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.evaluation import CocoMetric
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from msdet.datasets.synthetic_coco import CLASSES, make_coco_dataset
from msdet.evaluation import ScaleAwareCocoMetric
from msdet.evaluation.scale_report import (load_results, pareto_front,
                                           plot_ap_vs_flops, query_best)
from conftest import load_tool, working_dir

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CFG = osp.join(REPO, 'configs/psconv/demo/mask_rcnn_psr50_fpn_demo.py')


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('scale') / 'data/coco_demo'
    make_coco_dataset(root, num_train=2, num_val=6)
    return root


def noisy_predictions(coco, seed=0):
    """Detections near every GT box (jittered, random scores, some wrong
    labels) plus false positives: AP well inside (0, 1) in every bucket."""
    rng = np.random.default_rng(seed)
    samples = []
    for img_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))
        boxes, labels = [], []
        for a in anns:
            x, y, w, h = a['bbox']
            j = rng.normal(0, 0.08, 4) * [w, h, w, h]
            boxes.append([x + j[0], y + j[1], x + w + j[2], y + h + j[3]])
            labels.append(a['category_id'] - 1 if rng.random() > 0.2 else
                          int(rng.integers(len(CLASSES))))
        for _ in range(3):
            x, y = rng.uniform(0, 200, 2)
            s = rng.uniform(8, 60)
            boxes.append([x, y, x + s, y + s])
            labels.append(int(rng.integers(len(CLASSES))))
        info = coco.imgs[img_id]
        samples.append(dict(
            img_id=img_id, ori_shape=(info['height'], info['width']),
            scale_factor=(0.5, 0.5),
            pred_instances=dict(
                bboxes=torch.tensor(boxes, dtype=torch.float32),
                scores=torch.tensor(rng.random(len(boxes)),
                                    dtype=torch.float32),
                labels=torch.tensor(labels))))
    return samples


def direct_cocoeval(coco, samples, area_rng=None):
    dets = [dict(image_id=s['img_id'], category_id=int(lab) + 1,
                 bbox=[float(b[0]), float(b[1]), float(b[2] - b[0]),
                       float(b[3] - b[1])], score=float(sc))
            for s in samples for b, sc, lab in zip(
                s['pred_instances']['bboxes'], s['pred_instances']['scores'],
                s['pred_instances']['labels'])]
    ev = COCOeval(coco, coco.loadRes(dets), 'bbox')
    if area_rng is not None:
        ev.params.areaRng = area_rng
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


def test_metric_equals_cocometric_and_direct_cocoeval(dataset):
    ann = str(dataset / 'annotations/instances_val2017.json')
    coco = COCO(ann)
    samples = noisy_predictions(coco)
    meta = dict(classes=CLASSES)
    ours, ref = ScaleAwareCocoMetric(ann_file=ann, metric='bbox'), \
        CocoMetric(ann_file=ann, metric='bbox')
    for m in (ours, ref):
        m.dataset_meta = meta
        m.process({}, samples)
    got, want = ours.evaluate(len(samples)), ref.evaluate(len(samples))
    for k, v in want.items():
        assert got[k] == v, k  # mmdet's CocoMetric numbers, unchanged
    stats = direct_cocoeval(coco, samples)
    assert 0.1 < stats[0] < 0.9
    for i, k in enumerate(('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m',
                           'mAP_l')):
        assert got[f'coco/bbox_{k}'] == pytest.approx(stats[i], abs=6e-4)
    # resized buckets: every image was tested at half size (area x 1/4),
    # the same as COCOeval with 4x larger area thresholds at full size
    big = direct_cocoeval(coco, samples, [[0, 1e10], [0, 4 * 32**2],
                                          [4 * 32**2, 4 * 96**2],
                                          [4 * 96**2, 1e10]])
    for i, k in zip((3, 4, 5), ('AP_S', 'AP_M', 'AP_L')):
        if big[i] < 0:
            assert f'coco/bbox_{k}_resized' not in got
        else:
            assert got[f'coco/bbox_{k}_resized'] == pytest.approx(big[i])
    # ground-truth counts per bucket, original and resized
    areas = [a['area'] for a in coco.dataset['annotations']]
    assert got['coco/gt_small'] == sum(a <= 32**2 for a in areas)
    assert got['coco/gt_large'] == sum(a > 96**2 for a in areas)
    assert got['coco/gt_small_resized'] == sum(a / 4 <= 32**2 for a in areas)
    assert got['coco/gt_large_resized'] == 0


@pytest.fixture(scope='module')
def sweep(dataset, tmp_path_factory):
    """Two checkpoints of the demo model side by side at three scales."""
    work = tmp_path_factory.mktemp('sweep')
    with working_dir(dataset.parent.parent):
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        from mmdet.registry import MODELS
        cfg = Config.fromfile(DEMO_CFG)
        ckpts = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            with DefaultScope.overwrite_default_scope('mmdet'):
                model = MODELS.build(cfg.model)
            model.init_weights()
            path = work / f'model{seed}.pth'
            torch.save({'state_dict': model.state_dict(),
                        'meta': {'dataset_meta': {'classes': CLASSES}}}, path)
            ckpts.append(str(path))
        tool = load_tool('analysis/scale_benchmark')
        rows = tool.main([DEMO_CFG, ckpts[0], '--compare', DEMO_CFG, ckpts[1],
                          '--names', 'A', 'B', '--scales', '128', '192',
                          '256', '--work-dir', str(work / 'out')])
    return rows, work / 'out'


def test_sweep_rows_per_model_and_scale(sweep):
    rows, out = sweep
    assert [(r['model'], r['short_side']) for r in rows] == \
        [(m, s) for m in 'AB' for s in (128, 192, 256)]
    for r in rows:
        assert r['scale'] == [r['short_side']] * 2
        assert r['input_shape'] == [r['short_side']] * 2  # 32-divisible
        assert r['latency_ms'] > 0
        assert r['gflops_model'] > r['gflops_backbone'] > 0
        # COCO buckets by original area do not move with the test scale
        assert (r['gt_small'], r['gt_medium'], r['gt_large']) == \
            (rows[0]['gt_small'], rows[0]['gt_medium'], rows[0]['gt_large'])
    a = [r for r in rows if r['model'] == 'A']
    # FLOPs fall as the scale falls (backbone ~ quadratically)
    assert a[0]['gflops_backbone'] < a[1]['gflops_backbone'] < \
        a[2]['gflops_backbone']
    assert a[2]['gflops_backbone'] / a[0]['gflops_backbone'] == \
        pytest.approx(4.0, rel=0.1)
    assert a[0]['gflops_model'] < a[2]['gflops_model']
    # buckets by the tested area: objects shrink into 'small' at 128 px
    assert a[0]['gt_small_resized'] > a[2]['gt_small_resized'] == \
        a[2]['gt_small']
    assert a[0]['gt_large_resized'] == 0
    assert a[0]['bbox_AP_L_resized'] is None  # no GT there: n/a, not 0/-1


def test_sweep_outputs(sweep):
    rows, out = sweep
    saved = load_results(out / 'results.json')
    assert saved == json.loads(json.dumps(rows))
    csv_text = (out / 'results.csv').read_text()
    assert csv_text.count('\n') == len(rows) + 1 and 'n/a' in csv_text
    for png in ('ap_vs_scale.png', 'ap_vs_gflops.png'):
        with Image.open(out / png) as im:
            assert im.format == 'PNG' and im.size[0] > 300
    # one curve per model
    ax = plot_ap_vs_flops(rows, out / 'check.png')
    assert len(ax.lines) == 2


def test_sweep_matches_plain_test_at_the_config_scale(sweep, dataset):
    """The sweep's setting at the config's own scale gives what mmdet's test
    loop gives for the same checkpoint."""
    rows, out = sweep
    with working_dir(dataset.parent.parent):
        test_tool = load_tool('test')
        metrics = test_tool.main([DEMO_CFG, str(out.parent / 'model0.pth'),
                                  '--work-dir', str(out.parent / 'plain')])
    row = [r for r in rows if r['model'] == 'A' and r['short_side'] == 256][0]
    for k, name in (('mAP', 'AP'), ('mAP_50', 'AP50'), ('mAP_l', 'AP_L')):
        v = metrics[f'coco/bbox_{k}']
        assert row[f'bbox_{name}'] == (None if v < 0 else v)


def test_markdown_table_and_differences(sweep, capsys):
    from msdet.evaluation.scale_report import markdown_table
    rows, _ = sweep
    table = markdown_table(rows)
    assert table.count('Δ vs A') == 3  # B against A at each scale
    assert 'n/a' in table


def test_pareto_front_and_query():
    assert pareto_front([(1, 10), (2, 9), (3, 12), (3, 11), (4, 12)]) == \
        [(1, 10), (3, 12)]
    rows = [dict(model='m', width=w, short_side=s, gflops_model=w * s / 10,
                 latency_ms=s / 10, bbox_AP=w * s / 1000)
            for w in (0.25, 0.5, 1.0) for s in (240, 480)]
    best = query_best(rows, max_gflops=30)
    assert (best['width'], best['short_side']) == (0.5, 480)
    best = query_best(rows, max_latency_ms=30)
    assert best['short_side'] == 240 and best['width'] == 1.0
    with pytest.raises(ValueError, match='no setting fits'):
        query_best(rows, max_gflops=1)
    with pytest.raises(ValueError, match='metric'):
        query_best(rows, max_gflops=30, metric='segm_AP_X')


def test_bad_inputs(tmp_path, sweep):
    tool = load_tool('analysis/scale_benchmark')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        tool.main([DEMO_CFG, 'nope.pth', '--scales', '128'])
    with pytest.raises(ValueError, match='positive integers'):
        tool.main([DEMO_CFG, 'x.pth', '--scales', '128', '0'])
    empty = tmp_path / 'empty.json'
    empty.write_text('[]')
    query = load_tool('analysis/query_budget')
    with pytest.raises(ValueError, match='holds no results'):
        query.main([str(empty), '--max-gflops', '10'])
    _, out = sweep
    with pytest.raises(ValueError, match='cannot switch width'):
        tool.main([DEMO_CFG, str(out.parent / 'model0.pth'), '--scales',
                   '128', '--widths', '0.5', '--work-dir', str(tmp_path)])


MUTUAL_CFG = osp.join(
    REPO, 'configs/mutualnet/demo/mask_rcnn_slimvgg16_fpn_demo.py')


def test_width_sweep_with_bn_recalibration(dataset, tmp_path):
    """MutualNet's evaluation: widths x scales, BN re-estimated per setting,
    the AP-vs-FLOPs curve is the switchable model's Pareto front."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS
    with working_dir(dataset.parent.parent):
        cfg = Config.fromfile(MUTUAL_CFG)
        with DefaultScope.overwrite_default_scope('mmdet'):
            model = MODELS.build(cfg.model)
        model.init_weights()
        ckpt = tmp_path / 'slim.pth'
        torch.save({'state_dict': model.state_dict()}, ckpt)
        tool = load_tool('analysis/scale_benchmark')
        rows = tool.main([MUTUAL_CFG, str(ckpt), '--widths', '1.0', '0.5',
                          '--scales', '128', '256', '--recalibrate-bn', '2',
                          '--work-dir', str(tmp_path / 'out')])
        with pytest.raises(ValueError, match='width=0.1'):
            tool.main([MUTUAL_CFG, str(ckpt), '--widths', '0.1',
                       '--scales', '128'])
    assert [(r['width'], r['short_side']) for r in rows] == \
        [(1.0, 128), (1.0, 256), (0.5, 128), (0.5, 256)]
    full, half = rows[1], rows[3]
    # backbone cost follows ~w^2 (first conv keeps its 3 input channels)
    assert half['gflops_backbone'] / full['gflops_backbone'] == \
        pytest.approx(0.25, abs=0.03)
    ax = plot_ap_vs_flops(rows, tmp_path / 'f.png')
    assert len(ax.lines) == 1  # one curve (the Pareto front) for one model


def test_config_sweep_settings_are_the_defaults(tmp_path):
    """A config whose test_cfg is a ScaleSweepTestLoop names its own scales,
    sub-networks and BN recalibration; the command line overrides them."""
    tool = load_tool('analysis/scale_benchmark')
    ckpt = tmp_path / 'x.pth'
    torch.save({'state_dict': {}}, ckpt)
    cfg_path = osp.join(REPO, 'configs/study/resizable/'
                        'mask_rcnn_rsr50_fpn_quarter_ms_super.py')
    own = tool.sweep_config(cfg_path, str(ckpt), tool.parse_args(
        [cfg_path, str(ckpt)]), str(tmp_path))
    assert own.test_cfg.scales == [192, 256, 384]
    assert own.test_cfg.subnets[3] == dict(resize1=0.5, resize2=1.0,
                                           resize3=1.0, resize4=1.0)
    assert own.test_cfg.recalibrate_bn == 100
    cli = tool.sweep_config(cfg_path, str(ckpt), tool.parse_args(
        [cfg_path, str(ckpt), '--scales', '128', '--recalibrate-bn', '0']),
        str(tmp_path))
    assert (cli.test_cfg.scales, cli.test_cfg.recalibrate_bn) == ([128], 0)
    assert len(cli.test_cfg.subnets) == 4
    plain = tool.sweep_config(DEMO_CFG, str(ckpt), tool.parse_args(
        [DEMO_CFG, str(ckpt)]), str(tmp_path))
    assert list(plain.test_cfg.scales) == [240, 360, 480, 600, 800]
    assert plain.test_cfg.subnets is None and plain.test_cfg.widths is None
