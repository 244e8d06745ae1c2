"""Resizable-Adapt: ResizeLearner, targets, learner training, per-image
routing, FLOPs actually spent, report."""
import contextlib
import io
import json
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmdet.evaluation import CocoMetric
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint, save_checkpoint
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from msdet.analysis.resizable import best_candidates, coco_detections
from msdet.datasets.synthetic_coco import make_coco_dataset
from msdet.evaluation.complexity import model_gflops
from msdet.models import ResizeLearner
from msdet.models.detectors.resizable_adapt import read_targets
from msdet.ops import set_subnet
from msdet.ops.feature_resize import resized_size
from conftest import load_tool, working_dir

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CFG = osp.join(REPO,
                    'configs/resizable/demo/faster_rcnn_rsr50_fpn_demo.py')
ADAPT_CFG = osp.join(
    REPO, 'configs/resizable/demo/faster_rcnn_rsr50_fpn_adapt_demo.py')


def conf(*factors):
    return {f'resize{i + 1}': float(f) for i, f in enumerate(factors)}


CANDIDATES = [conf(1, 1, 1, 1), conf(0.5, 1, 1, 1), conf(0.5, 0.5, 0.5, 0.5)]

# the demo super-network scaled down (as in tests/test_resizable.py), and
# the demo Resizable-Adapt config around it
SMALL_MODEL = """dict(
    backbone=dict(base_channels=8, resize_factors=[0.5, 1.0]),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=32),
                  bbox_head=dict(in_channels=32, fc_out_channels=64)))"""
SMALL_DATA = """
_resize = dict(type='Resize', scale=(96, 96), keep_ratio=True)
_test = [dict(type='LoadImageFromFile'), _resize,
         dict(type='LoadAnnotations', with_bbox=True),
         dict(type='PackDetInputs', meta_keys=('img_id', 'img_path',
              'ori_shape', 'img_shape', 'scale_factor'))]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True), _resize,
    dict(type='PackDetInputs')]))
val_dataloader = dict(batch_size=2, dataset=dict(pipeline=_test))
test_dataloader = val_dataloader
"""
SMALL_CFG = f"_base_ = {DEMO_CFG!r}\nmodel = {SMALL_MODEL}\n{SMALL_DATA}"
ADAPT_SMALL = f"""_base_ = {ADAPT_CFG!r}
model = dict(detector={SMALL_MODEL},
             learner=dict(configurations={CANDIDATES!r}, feat_channels=16))
{SMALL_DATA}"""


@pytest.fixture(scope='module', autouse=True)
def no_onednn():
    """New feature-map sizes per configuration: avoid oneDNN recompiles."""
    with torch.backends.mkldnn.flags(enabled=False):
        yield


def adapt_model(**learner):
    """A ResizableAdaptDetector around the small super-network."""
    cfg = Config.fromstring(ADAPT_SMALL, '.py').model
    cfg.learner.update(learner)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MMDET_MODELS.build(cfg)


# --- the learner ------------------------------------------------------------

def test_learner_shapes_and_softmax():
    torch.manual_seed(0)
    learner = ResizeLearner(CANDIDATES, in_channels=24, feat_channels=16)
    convs = [m for m in learner.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 and convs[-1].out_channels == 3  # paper 3.5
    learner.eval()
    for size in ((13, 9), (1, 1)):  # a stem map, a 1x1 last stage
        x = torch.randn(5, 24, *size)
        probs = learner(x)
        assert probs.shape == (5, 3)
        assert (probs >= 0).all()
        torch.testing.assert_close(probs.sum(1), torch.ones(5))
        torch.testing.assert_close(probs, learner.logits(x).softmax(1))
    with pytest.raises(ValueError, match=r'\(5, 7, 4, 4\).*\(N, 24, H, W\)'):
        learner(torch.randn(5, 7, 4, 4))


@pytest.mark.parametrize('kwargs,match', [
    (dict(in_stage='layer2'), r"in_stage='layer2'.*'last' or 'stem'"),
    (dict(configurations=[]), r'non-empty'),
    (dict(configurations=[conf(1, 1), conf(1, 1)]), r'listed twice'),
    (dict(configurations=[conf(1, 1), conf(1)]), r'same keys'),
    (dict(feat_channels=0), r'feat_channels=0'),
])
def test_learner_bad_arguments(kwargs, match):
    kwargs = dict(dict(configurations=CANDIDATES, in_channels=8), **kwargs)
    with pytest.raises(ValueError, match=match):
        ResizeLearner(**kwargs)


def test_wrapper_reads_channels_and_probe_from_the_backbone():
    model = adapt_model()
    assert model.learner.in_channels == 256  # layer4 of the 1/8-wide R-50
    assert model.learner.probe == conf(0.5, 0.5, 0.5, 0.5)
    stem = adapt_model(in_stage='stem')
    assert stem.learner.in_channels == 8 and stem.learner.probe is None
    assert not any(p.requires_grad for p in model.detector.parameters())
    model.train()
    assert model.learner.training and not model.detector.training
    with pytest.raises(ValueError, match=r"learner \['in_channels'\] follow "
                       r'from the backbone'):
        adapt_model(in_channels=64)


@pytest.mark.parametrize('configurations,match', [
    ([conf(1, 1, 1, 1), conf(1, 0.75, 1, 1)],
     r"\{'resize1': 1.0, 'resize2': 0.75.*outside the model's space "
     r"\(resize2=0.75\); allowed: \{'resize1': \[0.5, 1.0\]"),
    ([conf(1, 1, 1)], r"outside the model's space: give one factor for "
     r"each of \['resize1', 'resize2', 'resize3', 'resize4'\]"),
])
def test_configuration_outside_the_space_fails_at_build(configurations,
                                                        match):
    with pytest.raises(ValueError, match=match):
        adapt_model(configurations=configurations)


def test_learner_trained_for_another_candidate_list_fails(tmp_path):
    model = adapt_model()
    save_checkpoint(model.state_dict(), str(tmp_path / 'a.pth'))
    other = adapt_model(configurations=[conf(1, 1, 1, 1), conf(1, 0.5, 1, 1),
                                        conf(0.5, 0.5, 0.5, 0.5)])
    with pytest.raises(ValueError, match=r"trained for candidates .*"
                       r"'resize1': 0.5, 'resize2': 1.0.*this model lists "
                       r".*'resize1': 1.0, 'resize2': 0.5"):
        load_checkpoint(other, str(tmp_path / 'a.pth'))
    same = adapt_model()
    load_checkpoint(same, str(tmp_path / 'a.pth'))
    assert torch.equal(same.learner.convs[0].weight,
                       model.learner.convs[0].weight)
    stem = adapt_model(in_stage='stem')
    save_checkpoint(stem.state_dict(), str(tmp_path / 's.pth'))
    with pytest.raises(ValueError, match=r"learner was trained reading the "
                       r"stem; this model is reading the last stage probed "
                       r"at \{'resize1': 0.5, 'resize2': 0.5"):
        load_checkpoint(adapt_model(), str(tmp_path / 's.pth'))
    # a targets file written for another list
    (tmp_path / 't.json').write_text(json.dumps(dict(
        candidates=CANDIDATES[::-1], images=[dict(img_id=1, best=0)])))
    with pytest.raises(ValueError, match=r'written for the candidates'):
        read_targets(str(tmp_path / 't.json'), CANDIDATES)


# --- routing ----------------------------------------------------------------

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('adapt')
    make_coco_dataset(root / 'data/coco_demo', num_train=4, num_val=4,
                      image_size=128, min_objects=3, max_objects=4)
    (root / 'small.py').write_text(SMALL_CFG)
    (root / 'adapt.py').write_text(ADAPT_SMALL)
    return root


def batch_of(root, n):
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(root / 'adapt.py'))
    with working_dir(root), DefaultScope.overwrite_default_scope('mmdet'):
        loader = Runner.build_dataloader(dict(cfg.test_dataloader,
                                              batch_size=n))
        return next(iter(loader))


def stage_sizes(settings, stem=96 // 4):
    """Input size of each stage's first block after its resize, for a
    96x96 image (stem 24 px; strided block 0 of stages 2-4 halves)."""
    size, out = (stem, stem), []
    for i in range(4):
        if i:
            size = tuple((v - 1) // 2 + 1 for v in size)
        size = resized_size(size, settings[f'resize{i + 1}'])
        out.append(size)
    return out


def test_routing_runs_each_image_at_its_chosen_configuration(data,
                                                             monkeypatch):
    torch.manual_seed(0)
    model = adapt_model()
    model.eval()
    batch = batch_of(data, 3)
    chosen = [2, 0, 2]  # what the learner says for the three images
    monkeypatch.setattr(model.learner, 'forward',
                        lambda x: torch.eye(3)[chosen][:len(x)])
    bb = model.backbone
    seen = []  # (batch size, size at each resize point) per backbone pass
    handles = [getattr(bb, name)[at].register_forward_pre_hook(
        lambda m, args: seen.append((args[0].shape[0],
                                     tuple(args[0].shape[-2:]))))
        for name, at in zip(bb.res_layers, bb.resize_at)]
    with torch.no_grad():
        outs = model.test_step(batch)
    for h in handles:
        h.remove()
    passes = [seen[i:i + 4] for i in range(0, len(seen), 4)]
    # the probe at the cheapest configuration, then one pass per choice:
    # candidate 0 (image 1) and candidate 2 (images 0 and 2)
    assert passes == [
        [(3, s) for s in stage_sizes(conf(0.5, 0.5, 0.5, 0.5))],
        [(1, s) for s in stage_sizes(CANDIDATES[0])],
        [(2, s) for s in stage_sizes(CANDIDATES[2])]]
    assert stage_sizes(CANDIDATES[0])[1] == (12, 12)
    assert stage_sizes(CANDIDATES[2])[1] == (3, 3)
    assert [o.metainfo['subnet_choice'] for o in outs] == chosen
    # each image's detections are the super-network's at its configuration
    with torch.no_grad():
        for i, k in enumerate(chosen):
            set_subnet(model.detector, **CANDIDATES[k])
            ref = model.detector.test_step(dict(
                inputs=batch['inputs'][i:i + 1],
                data_samples=[batch['data_samples'][i].clone()]))[0]
            assert len(ref.pred_instances) > 0
            torch.testing.assert_close(outs[i].pred_instances.bboxes,
                                       ref.pred_instances.bboxes)


# --- targets, learner training, FLOPs spent, report ------------------------

def image_loader(root, split_cfg, pipeline_cfg):
    """Batches of one image of a config's dataset through a pipeline."""
    from mmengine.runner import Runner
    return Runner.build_dataloader(dict(
        dataset=dict(split_cfg.dataset,
                     pipeline=pipeline_cfg.dataset.pipeline),
        batch_size=1, num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False)))


@pytest.fixture(scope='module')
def trained(data):
    """A small super-network (random weights), targets for its three
    candidates on 3 of the 4 training images, and the learner trained on
    them for 2 epochs through tools/train.py."""
    torch.manual_seed(0)
    save_checkpoint(dict(state_dict=adapt_model().detector.state_dict()),
                    str(data / 'super.pth'))
    with working_dir(data):
        out = load_tool('analysis/resizable_adapt_targets').main(
            ['adapt.py', 'super.pth', '--num-images', '3', '--seed', '1',
             '--work-dir', 'targets'])
        runner = load_tool('train').main(
            [out['files']['config'], '--work-dir', 'learner',
             '--cfg-options', 'train_cfg.max_epochs=2',
             'train_cfg.val_interval=100', 'param_scheduler=[]',
             'default_hooks.checkpoint.interval=2'])
    return out, runner


def test_targets_equal_a_brute_force_evaluation(data, trained):
    out = trained[0]
    targets = out['targets']
    cfg = Config.fromfile(str(data / 'adapt.py'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        det = MMDET_MODELS.build(cfg.model.detector)
    load_checkpoint(det, str(data / 'super.pth'), strict=True)
    det.eval()
    # candidates written cheapest first: all 0.5, 0.5/1/1/1, all 1.0
    assert targets['candidates'] == [CANDIDATES[2], CANDIDATES[1],
                                     CANDIDATES[0]]
    ann_file = str(data / 'data/coco_demo/annotations/instances_train2017'
                   '.json')
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(ann_file)
    cat_ids = sorted(coco.getCatIds())
    wanted = [im['img_id'] for im in targets['images']]
    assert len(wanted) == 3 and len(set(wanted)) == 3
    costs, scores, scored = None, {}, 0
    with working_dir(data), DefaultScope.overwrite_default_scope('mmdet'), \
            torch.no_grad():
        for batch in image_loader(data, cfg.train_dataloader,
                                  cfg.test_dataloader):
            img_id = batch['data_samples'][0].img_id
            if costs is None:  # whole-model GFLOPs on the first image
                d = det.data_preprocessor(batch, False)
                costs = []
                for c in targets['candidates']:
                    set_subnet(det, **c)
                    costs.append(model_gflops(det, d['inputs'],
                                              d['data_samples']))
            if img_id not in wanted:
                continue
            row = []
            for c in targets['candidates']:
                set_subnet(det, **c)
                pred = det.test_step(batch)[0].pred_instances
                dets = coco_detections(img_id, pred, cat_ids)
                # pycocotools on the whole annotation file, this image only
                with contextlib.redirect_stdout(io.StringIO()):
                    ev = COCOeval(coco, coco.loadRes(dets), 'bbox')
                    ev.params.imgIds = [img_id]
                    ev.evaluate(), ev.accumulate(), ev.summarize()
                row.append(float(ev.stats[0]))
                # mmdet's CocoMetric on a test set of this one image
                one = data / f'one_{img_id}.json'
                one.write_text(json.dumps(dict(
                    coco.dataset, images=[coco.imgs[img_id]],
                    annotations=coco.imgToAnns[img_id])))
                metric = CocoMetric(ann_file=str(one), metric='bbox')
                metric.dataset_meta = dict(classes=('circle', 'square',
                                                    'triangle'))
                with contextlib.redirect_stdout(io.StringIO()):
                    metric.process({}, [dict(
                        img_id=img_id, ori_shape=batch['data_samples'][0]
                        .ori_shape, pred_instances=pred.to_dict())])
                    mm = metric.evaluate(1)['coco/bbox_mAP']
                assert mm == pytest.approx(row[-1], abs=6e-4)
            scores[img_id] = row
            scored += 1
    assert scored == 3
    assert costs == pytest.approx(targets['gflops_model'])
    assert costs == sorted(costs)
    for im in targets['images']:
        assert im['scores'] == pytest.approx(scores[im['img_id']], abs=1e-9)
        # best: highest AP, ties to the cheapest (the first)
        ref = max(range(3), key=lambda k: (scores[im['img_id']][k], -k))
        assert im['best'] == ref
    assert any(max(r) > 0 for r in scores.values())  # not all-zero ties
    assert best_candidates([[0.5, 0.7, 0.7], [None, None, None]],
                           [1, 3, 2]) == [2, 0]
    # the learner trains on exactly these images
    ann = json.load(open(data / 'targets/instances_targets.json'))
    assert sorted(im['id'] for im in ann['images']) == sorted(wanted)


def test_only_the_learner_trains(data, trained):
    _, runner = trained
    model = runner.model
    state = torch.load(str(data / 'super.pth'))['state_dict']
    for key, value in model.detector.state_dict().items():
        assert torch.equal(value, state[key]), key  # weights and BN stats
    ckpt = torch.load(str(data / 'learner/epoch_2.pth'))['state_dict']
    assert ckpt['learner.candidates'].tolist() == [
        list(c.values()) for c in model.configurations]
    fresh = adapt_model(configurations=model.configurations)
    moved = [k for k, v in fresh.learner.state_dict().items()
             if k.endswith('weight') and not torch.equal(
                 v, ckpt[f'learner.{k}'])]
    assert len(moved) == 3  # the 3 convs
    hub = runner.message_hub
    assert len(hub.get_scalar('train/loss_resize').data[0]) == 4
    assert 'train/acc_resize' in hub.log_scalars


def test_mean_flops_is_the_mix_of_the_chosen_configurations(data, trained,
                                                            monkeypatch):
    from msdet.evaluation.complexity import backbone_gflops
    from msdet.evaluation.scale_loop import use_scale_sweep
    from msdet.utils.config import build_runner
    out, _ = trained
    cfg = Config.fromfile(str(data / out['files']['config']))
    cfg.work_dir = str(data / 'sweep')
    cfg.load_from = str(data / 'learner/epoch_2.pth')
    cfg.model.targets = None
    cfg.test_dataloader.batch_size = 1
    use_scale_sweep(cfg, scales=[96])
    with working_dir(data):
        runner = build_runner(cfg)
        model = runner.model
        order = iter([0, 2, 2, 1, 2, 0] * 4)  # FLOP counting calls first
        monkeypatch.setattr(  # (kept depending on the probe's features)
            model.learner, 'forward', lambda x: torch.eye(3)[
                [next(order) for _ in range(len(x))]] + 0 * x.sum())
        runner.test()
        batch = next(iter(runner.test_loop.dataloader))
    record = runner.test_loop.records[0]
    names = list(record['choices'])
    assert names == [', '.join(f'{k}={v}' for k, v in c.items())
                     for c in model.configurations]
    # FLOPs counting took one learner call, the 4 images the next four
    assert list(record['choices'].values()) == [0.0, 0.25, 0.75]
    d = model.data_preprocessor(batch, False)
    own = []
    for c in model.configurations:
        set_subnet(model.detector, **c)
        own.append(model_gflops(model.detector, d['inputs'],
                                d['data_samples']))
    # routing: the probe's backbone pass (outputs not restored for the FPN)
    set_subnet(model.detector, **conf(0.5, 0.5, 0.5, 0.5))
    monkeypatch.setattr(model.backbone, 'restore_outputs', False)
    probe = backbone_gflops(model.backbone, d['inputs'])
    assert record['gflops_routing'] == pytest.approx(probe)
    assert record['gflops_model'] == pytest.approx(
        probe + 0.25 * own[1] + 0.75 * own[2])
    assert own[0] < own[1] < own[2]


def test_report_puts_adapt_next_to_fixed_and_oracle(data, trained):
    out, _ = trained
    with working_dir(data):
        report = load_tool('analysis/resizable_adapt_report').main(
            [out['files']['config'], 'learner/epoch_2.pth', '--names',
             'adapt', '--work-dir', 'report'])
        nas = load_tool('analysis/resizable_nas').main(
            ['small.py', 'super.pth', '--work-dir', 'nas',
             '--configurations', '0.5,0.5,0.5,0.5', '0.5,1,1,1', '1,1,1,1'])
    adapt, fixed, oracle = (report['rows'][0], report['fixed'],
                            report['oracle'])
    assert adapt['model'] == 'adapt' and adapt['subnet'] == 'adaptive'
    assert sum(adapt['choices'].values()) == pytest.approx(1.0)
    # fixed points: the lookup table's (same configurations, same metric)
    assert [r['subnet'] for r in fixed] == [r['subnet'] for r in nas['rows']]
    for r, ref in zip(fixed, nas['rows']):
        for key in ('bbox_AP', 'bbox_AP_S', 'bbox_AP_M', 'bbox_AP_L',
                    'gflops_model', 'gflops_backbone'):
            assert r[key] == pytest.approx(ref[key], abs=1e-3), key
    # oracle: one point per ceiling, each image at its best candidate
    assert len(oracle) == 3
    assert [r['gflops_model'] <= f['gflops_model'] + 1e-12
            for r, f in zip(oracle, fixed)] == [True] * 3
    assert oracle[0]['bbox_AP'] == pytest.approx(fixed[0]['bbox_AP'])
    for name in ('results.json', 'results.csv', 'ap_vs_gflops.png',
                 'summary.md'):
        assert osp.isfile(data / 'report' / name)
    assert 'gap closed' in (data / 'report/summary.md').read_text()


def test_targets_tool_candidates_and_ceiling(data, trained):
    from msdet.analysis.resizable import parse_subnet_name
    from msdet.evaluation.scale_report import subnet_name
    assert parse_subnet_name(subnet_name(CANDIDATES[1])) == CANDIDATES[1]
    tool = load_tool('analysis/resizable_adapt_targets')
    gflops = trained[0]['targets']['gflops_model']
    (data / 'table.json').write_text(json.dumps(
        [dict(subnet=subnet_name(c)) for c in CANDIDATES]))
    with working_dir(data):
        with pytest.raises(ValueError, match=r"'0.75,1,1,1': resize1=0.75 "
                           r'is not one of \[0.5, 1.0\]'):
            tool.main(['adapt.py', 'super.pth', '--configurations',
                       '0.75,1,1,1'])
        with pytest.raises(ValueError, match=r'--max-gflops 0.001: no '
                           r'candidate fits; the cheapest needs'):
            tool.main(['adapt.py', 'super.pth', '--max-gflops', '0.001'])
        # a lookup table as the source, the ceiling keeps the two cheapest
        out = tool.main(['adapt.py', 'super.pth', '--lookup-table',
                         'table.json', '--max-gflops', str(gflops[1]),
                         '--num-images', '1', '--work-dir', 'ceiling'])
    assert out['targets']['candidates'] == [CANDIDATES[2], CANDIDATES[1]]
