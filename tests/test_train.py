"""The main path end to end on the embedded dataset: train, evaluate, resume,
load for inference, with mmdet's own tools and msdet's; checkpoints that do
not fit are refused before the run."""
import os
import os.path as osp
import subprocess
import sys

import mmdet
import pytest
import torch
from mmengine.config import Config

from msdet.datasets.synthetic_coco import make_coco_dataset
from conftest import COCO_COMPONENTS, load_tool, working_dir

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CFG = osp.join(REPO, 'configs/psconv/demo/mask_rcnn_psr50_fpn_demo.py')
# the demo config with msdet's dataset, hooks and wrapper
CFG = f'_base_ = {DEMO_CFG!r}\n' + COCO_COMPONENTS
TWO_EPOCHS = ['--cfg-options', 'train_cfg.max_epochs=2',
              'default_hooks.checkpoint.interval=1',
              'randomness.deterministic=True']


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    """A tiny embedded dataset at ./data/coco_demo, where the demo config
    looks, and the config; tests run with this directory as the working
    directory, under umask 022."""
    root = tmp_path_factory.mktemp('main_path')
    make_coco_dataset(root / 'data/coco_demo', num_train=8, num_val=4)
    (root / 'demo.py').write_text(CFG)
    umask = os.umask(0o022)
    with working_dir(root):
        yield root
    os.umask(umask)


def run_tool(args, workdir, debug=False):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    env.pop('MSDET_DEBUG', None)
    out = subprocess.run([sys.executable] + args + (['--debug'] if debug
                                                    else []),
                         cwd=workdir, env=env, capture_output=True,
                         text=True, timeout=600)
    return out.returncode, out.stdout + out.stderr


def test_mmdet_train_tool_runs_msdet_config(workdir):
    """mmdet's own tools/train.py, unchanged, trains and validates the main
    path config with msdet's components (custom_imports brings msdet in)."""
    train_py = osp.join(osp.dirname(mmdet.__file__), '.mim/tools/train.py')
    code, log = run_tool(
        [train_py, 'demo.py', '--work-dir', 'wd_mmdet', '--cfg-options',
         'train_cfg.max_epochs=1', 'train_cfg.val_interval=1'], workdir)
    assert code == 0, log[-3000:]
    assert 'PSResNet' in log  # the config's backbone, not mmdet's ResNet
    assert 'CheckedCocoDataset: data/coco_demo/annotations/' in log
    for task in ('bbox', 'segm'):
        for size in ('s', 'm', 'l'):
            line = [ln for ln in log.splitlines()
                    if f'coco/{task}_mAP_{size}:' in ln][-1]
            value = float(line.split(f'coco/{task}_mAP_{size}:')[1].split()[0])
            assert 0.0 <= value <= 1.0  # -1 would mean an empty bucket
    assert (workdir / 'wd_mmdet/last_checkpoint').read_text().endswith(
        'wd_mmdet/epoch_1.pth')


@pytest.fixture(scope='module')
def trained(workdir):
    """Two epochs (2 iterations each) with msdet's tools/train.py."""
    return load_tool('train').main(['demo.py', '--work-dir', 'wd'] +
                                   TWO_EPOCHS)


def test_checkpoints_are_whole_files_with_the_umasks_mode(trained, workdir):
    files = sorted(os.listdir(workdir / 'wd'))
    assert [f for f in files if not osp.isdir(workdir / 'wd' / f)] == [
        'demo.py', 'epoch_1.pth', 'epoch_2.pth', 'last_checkpoint']
    for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint'):
        assert os.stat(workdir / 'wd' / name).st_mode & 0o777 == 0o644


def test_train_then_resume_continues_exactly(trained, workdir):
    """Kill after epoch 1 and resume: optimizer, schedule, iteration and
    RNG state continue, so epoch 2 equals the uninterrupted run's. Temp
    files a killed write left in the work dir are removed."""
    ckpt1 = workdir / 'wd/epoch_1.pth'
    saved = torch.load(ckpt1, map_location='cpu')  # weights_only default
    assert saved['meta']['epoch'] == 1 and saved['meta']['iter'] == 2
    assert 'message_hub' in saved and 'optimizer' in saved
    assert len(saved['rng_state']) == 1  # one process

    (workdir / 'wd_resume').mkdir()
    stale = workdir / 'wd_resume/.epoch_2.pth.x8y7z6w5.part'
    stale.write_bytes(b'\0' * 100)
    resumed = load_tool('train').main(
        ['demo.py', '--work-dir', 'wd_resume', '--resume', str(ckpt1)] +
        TWO_EPOCHS)
    assert not stale.exists()
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


def test_resume_from_the_middle_of_an_epoch_is_refused(trained, workdir):
    """An iteration checkpoint of an epoch-based run: one error naming the
    epoch checkpoint to resume from, before training."""
    ckpt = torch.load(workdir / 'wd/epoch_1.pth', map_location='cpu')
    ckpt['meta']['iter'] = 3  # saved in epoch 2 after its first iteration
    torch.save(ckpt, workdir / 'wd/iter_3.pth')
    with pytest.raises(ValueError, match=r"checkpoint 'wd/iter_3.pth' was "
                       r'written at iteration 3, in the middle of epoch 2 '
                       r'\(2 iterations per epoch\); an epoch-based run '
                       r"resumes only from the end of an epoch: resume from "
                       r"'wd/epoch_1.pth' \(the end of epoch 1\)"):
        load_tool('train').main(['demo.py', '--work-dir', 'wd_mid',
                                 '--resume', 'wd/iter_3.pth'] + TWO_EPOCHS)
    os.remove(workdir / 'wd/iter_3.pth')


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
        'demo.py', str(workdir / 'wd/epoch_2.pth'), '--work-dir', 'wd_test'
    ])
    saved = json.loads((workdir / 'wd_test/metrics.json').read_text())
    for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s',
                'bbox_mAP_m', 'bbox_mAP_l', 'segm_mAP', 'segm_mAP_l'):
        assert saved[f'coco/{key}'] == pytest.approx(metrics[f'coco/{key}'])
    assert os.stat(workdir / 'wd_test/metrics.json').st_mode & 0o777 == 0o644


def other_model_checkpoint(path, **model):
    """The demo detector with other settings, as built (not trained)."""
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(DEMO_CFG)
    cfg.merge_from_dict({f'model.{k}': v for k, v in model.items()})
    with DefaultScope.overwrite_default_scope('mmdet'):
        det = MODELS.build(cfg.model)
    torch.save({'state_dict': det.state_dict()}, path)
    return det


def test_test_tool_refuses_another_models_checkpoint(workdir):
    """tools/test.py with a checkpoint of another architecture (a wider
    backbone, another neck): one message, exit status 1, no traceback
    (--debug shows it), instead of AP 0.000."""
    other_model_checkpoint(workdir / 'wide.pth', **{
        'backbone.base_channels': 32,
        'neck.in_channels': [128, 256, 512, 1024]})
    code, log = run_tool([f'{REPO}/tools/test.py', 'demo.py', 'wide.pth',
                          '--work-dir', 'wd_wide'], workdir)
    assert code == 1
    assert "test.py: error: ValueError: checkpoint 'wide.pth' does not fit " \
        'this MaskRCNN: 91 of 360 tensors match; 269 have other shapes (e.g. ' \
        "'backbone.conv1.weight': (32, 3, 7, 7) in the checkpoint, (16, 3, 7, " \
        '7) in the model).' in log
    assert 'It was likely written for another architecture or config' in log
    assert 'Traceback' not in log and not (workdir / 'wd_wide/metrics.json'
                                           ).exists()


def test_load_from_with_other_classes_only_warns(trained, workdir):
    """Fine-tuning: heads of another class count load with mmengine's
    warning, every other tensor is loaded."""
    other_model_checkpoint(workdir / 'classes5.pth', **{
        'roi_head.bbox_head.num_classes': 5,
        'roi_head.mask_head.num_classes': 5})
    src = torch.load(workdir / 'classes5.pth')['state_dict']
    runner = load_tool('train').main([
        'demo.py', '--work-dir', 'wd_ft', '--cfg-options',
        'load_from=classes5.pth', 'train_cfg.max_epochs=0'])
    own = runner.model.state_dict()
    assert torch.equal(own['backbone.conv1.weight'],
                       src['backbone.conv1.weight'])
    assert own['roi_head.bbox_head.fc_cls.weight'].shape[0] == 4


def test_load_from_a_backbone_checkpoint_names_the_prefix(workdir):
    det = other_model_checkpoint(workdir / 'tmp.pth')
    torch.save({'state_dict': det.backbone.state_dict()}, 'backbone.pth')
    with pytest.raises(ValueError, match=r'Its keys lack the "backbone." prefix: it '
                       r'is a backbone checkpoint; give it as '
                       r'model.backbone.init_cfg='):
        load_tool('train').main(['demo.py', '--work-dir', 'wd_bb',
                                 '--cfg-options', 'load_from=backbone.pth'])


def test_missing_checkpoint_is_one_clear_error(workdir):
    with pytest.raises(FileNotFoundError, match='no/such.pth'):
        load_tool('test').main(['demo.py', 'no/such.pth'])
