"""The main path end to end on the embedded dataset: train, evaluate, resume,
load for inference, with mmdet's own tools and msdet's."""
import os.path as osp
import subprocess
import sys

import mmdet
import pytest
import torch

from msdet.datasets.synthetic_coco import make_coco_dataset
from conftest import load_tool, working_dir

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CFG = osp.join(REPO, 'configs/psconv/demo/mask_rcnn_psr50_fpn_demo.py')


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    """A tiny embedded dataset at ./data/coco_demo, where the demo config
    looks; tests run with this directory as the working directory."""
    root = tmp_path_factory.mktemp('main_path')
    make_coco_dataset(root / 'data/coco_demo', num_train=8, num_val=4)
    with working_dir(root):
        yield root


def test_mmdet_train_tool_runs_msdet_config(workdir):
    """mmdet's own tools/train.py, unchanged, trains and validates the main
    path config (custom_imports brings msdet in)."""
    train_py = osp.join(osp.dirname(mmdet.__file__), '.mim/tools/train.py')
    out = subprocess.run(
        [sys.executable, train_py, DEMO_CFG, '--work-dir', 'wd_mmdet',
         '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1'],
        cwd=workdir, capture_output=True, text=True, timeout=600)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert 'PSResNet' in log  # the config's backbone, not mmdet's ResNet
    for task in ('bbox', 'segm'):
        for size in ('s', 'm', 'l'):
            line = [ln for ln in log.splitlines()
                    if f'coco/{task}_mAP_{size}:' in ln][-1]
            value = float(line.split(f'coco/{task}_mAP_{size}:')[1].split()[0])
            assert 0.0 <= value <= 1.0  # -1 would mean an empty bucket


@pytest.fixture(scope='module')
def trained(workdir):
    """Two epochs (2 iterations each) with msdet's tools/train.py."""
    runner = load_tool('train').main([
        DEMO_CFG, '--work-dir', 'wd', '--cfg-options',
        'train_cfg.max_epochs=2', 'default_hooks.checkpoint.interval=1',
        'randomness.deterministic=True'
    ])
    return runner


def test_train_then_resume_continues_exactly(trained, workdir):
    """Kill after epoch 1 and resume: optimizer, schedule, iteration and
    RNG state continue, so epoch 2 equals the uninterrupted run's."""
    ckpt1 = workdir / 'wd/epoch_1.pth'
    saved = torch.load(ckpt1, map_location='cpu')  # weights_only default
    assert saved['meta']['epoch'] == 1 and saved['meta']['iter'] == 2
    assert 'message_hub' in saved and 'optimizer' in saved

    resumed = load_tool('train').main([
        DEMO_CFG, '--work-dir', 'wd_resume', '--resume', str(ckpt1),
        '--cfg-options', 'train_cfg.max_epochs=2',
        'default_hooks.checkpoint.interval=1', 'randomness.deterministic=True'
    ])
    assert resumed.epoch == 2 and resumed.iter == 4
    final = torch.load(workdir / 'wd_resume/epoch_2.pth', map_location='cpu')
    assert final['meta']['iter'] == 4
    # the optimizer continued from the saved state (AdamW step counts)
    steps = [s['step'] for s in final['optimizer']['state'].values()]
    assert steps and all(float(s) == 4 for s in steps)
    # and the weights moved on from the resumed checkpoint
    key = 'backbone.layer1.0.conv2.weight'
    assert not torch.equal(final['state_dict'][key], saved['state_dict'][key])
    # exactly as far as the uninterrupted run (RNGStateHook, deterministic)
    full = torch.load(workdir / 'wd/epoch_2.pth', map_location='cpu')
    for k, v in full['state_dict'].items():
        assert torch.equal(v, final['state_dict'][k]), k


def test_init_detector_on_saved_checkpoint(trained, workdir):
    from mmdet.apis import inference_detector, init_detector
    ckpt = workdir / 'wd/epoch_2.pth'
    model = init_detector(DEMO_CFG, str(ckpt), device='cpu')
    state = torch.load(ckpt, map_location='cpu')['state_dict']
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert model.dataset_meta['classes'] == ('circle', 'square', 'triangle')
    img = str(next((workdir / 'data/coco_demo/val2017').iterdir()))
    result = inference_detector(model, img)
    pred = result.pred_instances
    assert pred.bboxes.shape[1] == 4
    assert pred.masks.shape[1:] == (256, 256)


def test_msdet_test_tool_prints_table_and_writes_json(trained, workdir):
    import json
    metrics = load_tool('test').main([
        DEMO_CFG, str(workdir / 'wd/epoch_2.pth'), '--work-dir', 'wd_test'
    ])
    saved = json.loads((workdir / 'wd_test/metrics.json').read_text())
    for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s',
                'bbox_mAP_m', 'bbox_mAP_l', 'segm_mAP', 'segm_mAP_l'):
        assert saved[f'coco/{key}'] == pytest.approx(metrics[f'coco/{key}'])


def test_missing_checkpoint_is_one_clear_error(workdir):
    with pytest.raises(FileNotFoundError, match='no/such.pth'):
        load_tool('test').main([DEMO_CFG, 'no/such.pth'])
