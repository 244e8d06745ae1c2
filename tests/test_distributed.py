"""Distributed runs on CPU: DDP training with the sub-network switching
hook through tools/dist_train.sh and tools/slurm_train.sh, a killed run
resumed to the uninterrupted run's weights, distributed testing and scale
sweeps equal to one process, and settings that need CUDA refused on a CPU
machine."""
import json
import os
import pickle
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from msdet.datasets.synthetic_coco import make_coco_dataset
from msdet.engine import SandwichSampler, iteration_rng
from msdet.utils.dist import (check_cuda_only_settings,
                              check_wrapper_settings, init_distributed)
from conftest import REPO, RUNTIME_COMPONENTS, load_tool, working_dir
from test_mutualnet import SCALES, SMALL_CFG

no_cuda = pytest.mark.skipif(torch.cuda.is_available(),
                             reason='checks the CPU-only code path')

# A hook that every rank runs last: what each iteration trained (the switch
# hook's sub-networks from the message hub, the images) and the weights at
# the start and at the end, one file per rank.
PROBE = """
import os
import os.path as osp
import signal

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillHook(Hook):
    # rank 0 kills itself (SIGKILL, as a failing node) at the start of epoch
    # KILL_AT_EPOCH, after the previous epoch's checkpoint; torchrun then
    # stops the other rank
    def before_train_epoch(self, runner):
        if runner.rank == 0 and \\
                str(runner.epoch) == os.environ.get('KILL_AT_EPOCH'):
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class RankProbeHook(Hook):
    priority = 'LOWEST'

    def before_train(self, runner):
        self.seen = []
        self.initial = {k: v.clone() for k, v in self._state(runner).items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.seen.append(dict(
            iter=runner.iter, subnets=runner.message_hub.get_info('subnets'),
            images=[s.img_path for s in data_batch['data_samples']]))

    def after_train(self, runner):
        torch.save(dict(world_size=runner.world_size, seen=self.seen,
                        initial=self.initial, final=self._state(runner)),
                   osp.join(runner.work_dir, f'rank{runner.rank}.pt'))

    @staticmethod
    def _state(runner):
        return getattr(runner.model, 'module', runner.model).state_dict()
"""
# test_mutualnet's small MutualNet config (the demo config scaled down; the
# switch hook with 4 sub-networks at 4 scales) with msdet's components, two
# epochs of one iteration per rank without validation, the probes, a fixed
# seed; one checkpoint, at the end.
DDP_CFG = SMALL_CFG + RUNTIME_COMPONENTS + """
custom_imports = dict(imports=['msdet', 'rank_probe'],
                      allow_failed_imports=False)
custom_hooks = custom_hooks + [dict(type='RankProbeHook'),
                               dict(type='KillHook')]
train_cfg = dict(type='SubnetEpochBasedTrainLoop', max_epochs=2)
val_dataloader = val_cfg = val_evaluator = None
randomness = dict(seed=5)
"""
FAKE_SRUN = """#!{python}
# srun stand-in: records its arguments; unless FAKE_SRUN_DRY is set, runs
# --ntasks copies of the command with the environment srun gives each task.
import json, os, subprocess, sys
args = sys.argv[1:]
with open(os.environ['FAKE_SRUN_LOG'], 'w') as f:
    json.dump(args, f)
if os.environ.get('FAKE_SRUN_DRY'):
    sys.exit(0)
start = next(i for i, a in enumerate(args) if not a.startswith('-'))
opts = dict(a[2:].split('=', 1) for a in args[:start])
n, per_node = int(opts['ntasks']), int(opts['ntasks-per-node'])
tasks = [subprocess.Popen(args[start:], env=dict(
    os.environ, SLURM_PROCID=str(r), SLURM_NTASKS=str(n),
    SLURM_LOCALID=str(r % per_node), SLURM_NODELIST='node0'))
    for r in range(n)]
sys.exit(max(t.wait() for t in tasks))
"""


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    """5 val images (odd: DDP pads a shard), the config and the probe
    (importable); the tests run in this directory."""
    root = tmp_path_factory.mktemp('distributed')
    make_coco_dataset(root / 'data/coco_demo', num_train=4, num_val=5,
                      image_size=128)
    (root / 'rank_probe.py').write_text(PROBE)
    (root / 'ddp.py').write_text(DDP_CFG)
    sys.path.insert(0, str(root))
    with working_dir(root):
        yield root
    sys.path.remove(str(root))


def run(cmd, workdir, returncode=0, **env):
    env = dict(os.environ, PYTHONPATH=f'{REPO}:{workdir}', OMP_NUM_THREADS='1',
               PYTHON=sys.executable, **env)
    out = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True,
                         text=True, timeout=600)
    log = out.stdout + out.stderr
    assert (out.returncode == 0) == (returncode == 0), log[-4000:]
    return log


def load_ranks(work_dir):
    return [torch.load(work_dir / f'rank{r}.pt', weights_only=False)
            for r in (0, 1)]


def assert_same_weights(ranks):
    (a, b) = (r['final'] for r in ranks)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope='module')
def ddp_trained(workdir):
    """tools/dist_train.sh: 2 gloo processes, 2 iterations."""
    log = run(['bash', f'{REPO}/tools/dist_train.sh', 'ddp.py', '2',
               '--work-dir', 'wd_ddp'], workdir, PORT=str(free_port()))
    return workdir / 'wd_ddp', log


def test_dist_train_ranks_switch_alike_and_end_equal(ddp_trained):
    work_dir, log = ddp_trained
    assert 'no CUDA: distributed backend nccl -> gloo' in log
    ranks = load_ranks(work_dir)
    assert [r['world_size'] for r in ranks] == [2, 2]
    seen = [r['seen'] for r in ranks]
    assert [[s['iter'] for s in x] for x in seen] == [[0, 1], [0, 1]]
    # every rank trained the same sub-networks in the same iteration: the
    # sandwich rule drawn from the run's seed and the iteration
    sampler = SandwichSampler(scales=SCALES)
    for it, (s0, s1) in enumerate(zip(*seen)):
        assert s0['subnets'] == s1['subnets']
        assert s0['subnets'] == [  # (one iteration per epoch)
            dict(name=s.name, settings=s.settings, scale=s.scale)
            for s in sampler.sample(iteration_rng(5, it), it, it)]
        assert set(s0['images']).isdisjoint(s1['images'])  # own shards
    assert seen[0][0]['subnets'] != seen[0][1]['subnets']
    # different data, averaged gradients: the weights moved, alike on both
    # ranks (BN statistics too: recalibrated over both ranks) and as saved
    assert_same_weights(ranks)
    key = 'backbone.features.0.weight'
    assert not torch.equal(ranks[0]['initial'][key], ranks[0]['final'][key])
    saved = torch.load(work_dir / 'epoch_2.pth', weights_only=False)
    for k, v in saved['state_dict'].items():
        assert torch.equal(v, ranks[0]['final'][k]), k
    assert saved['message_hub']['runtime_info']['subnets'] == \
        seen[0][-1]['subnets']


def test_killed_ddp_run_resumes_to_the_uninterrupted_weights(ddp_trained,
                                                             workdir):
    """2 processes, rank 0 killed (SIGKILL) after epoch 1's checkpoint;
    tools/dist_train.sh --resume (the latest checkpoint): every rank gets
    its own RNG states back and the run ends with exactly the weights of
    the uninterrupted run (both ranks, and in epoch_2.pth)."""
    args = ['bash', f'{REPO}/tools/dist_train.sh', 'ddp.py', '2',
            '--work-dir', 'wd_kill', '--cfg-options',
            'default_hooks.checkpoint.interval=1']
    run(args, workdir, returncode=1, KILL_AT_EPOCH='1',
        PORT=str(free_port()))
    work_dir = workdir / 'wd_kill'
    assert not (work_dir / 'epoch_2.pth').exists()
    ckpt = torch.load(work_dir / 'epoch_1.pth', weights_only=False)
    states = ckpt['rng_state']
    assert len(states) == 2  # one per rank, and they differ
    assert not torch.equal(states[0]['torch'], states[1]['torch'])
    log = run(args + ['--resume'], workdir, PORT=str(free_port()))
    assert 'resumed epoch: 1, iter: 1' in log
    ranks = load_ranks(work_dir)
    assert [[s['iter'] for s in r['seen']] for r in ranks] == [[1], [1]]
    full = load_ranks(ddp_trained[0])
    for resumed, uninterrupted in zip(ranks, full):
        for k, v in uninterrupted['final'].items():
            assert torch.equal(v, resumed['final'][k]), k
    saved = torch.load(work_dir / 'epoch_2.pth', weights_only=False)
    for k, v in saved['state_dict'].items():
        assert torch.equal(v, full[0]['final'][k]), k


def test_dist_test_equals_one_process(ddp_trained, workdir):
    """tools/dist_test.sh with 2 processes: results gathered from both
    ranks (5 images, one rank's shard padded), the same predictions and
    COCO metrics as tools/test.py in one process; files from rank 0."""
    ckpt = str(ddp_trained[0] / 'epoch_2.pth')
    run(['bash', f'{REPO}/tools/dist_test.sh', 'ddp.py', ckpt, '2',
         '--work-dir', 'test2', '--out', 'test2/pred.pkl'], workdir,
        PORT=str(free_port()))
    one = load_tool('test').main(['ddp.py', ckpt, '--work-dir', 'test1',
                                  '--out', 'test1/pred.pkl'])
    two = json.loads((workdir / 'test2/metrics.json').read_text())
    assert two == json.loads((workdir / 'test1/metrics.json').read_text())
    assert two['coco/bbox_mAP'] == pytest.approx(one['coco/bbox_mAP'])
    assert two['coco/bbox_mAP_50'] > 0  # not a comparison of zeros
    preds = [pickle.loads((workdir / f'test{n}/pred.pkl').read_bytes())
             for n in (1, 2)]
    assert [p['img_id'] for p in preds[1]] == [1, 2, 3, 4, 5]
    for a, b in zip(*preds):  # per-rank batches may round differently
        for k in ('bboxes', 'scores', 'labels'):
            torch.testing.assert_close(a['pred_instances'][k],
                                       b['pred_instances'][k], rtol=1e-5,
                                       atol=1e-4, msg=f"{a['img_id']} {k}")
    assert sorted(p.name for p in (workdir / 'test2').iterdir()
                  if p.is_file()) == ['ddp.py', 'metrics.json', 'pred.pkl']


def test_scale_sweep_distributed_equals_one_process(ddp_trained, workdir):
    """The accuracy-across-scale sweep with widths and BN recalibration
    over 2 processes: the same rows as one process (bar latency)."""
    args = [str(ddp_trained[0] / 'epoch_2.pth'), '--scales', '96', '128',
            '--widths', '1.0', '0.25', '--recalibrate-bn', '4']
    run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
         '2', '--master_port', str(free_port()),
         f'{REPO}/tools/analysis/scale_benchmark.py', 'ddp.py', *args,
         '--launcher', 'pytorch', '--work-dir', 'sweep2'], workdir)
    load_tool('analysis/scale_benchmark').main(
        ['ddp.py', *args, '--work-dir', 'sweep1'])
    one, two = (json.loads((workdir / f'sweep{n}/results.json').read_text())
                for n in (1, 2))
    assert len(two) == len(one) == 4
    assert any(r['bbox_AP'] for r in one)  # not a comparison of zeros
    anns = json.loads((workdir / 'data/coco_demo/annotations/'
                       'instances_val2017.json').read_text())['annotations']
    for a, b in zip(one, two):
        assert b['latency_ms'] > 0
        a.pop('latency_ms'), b.pop('latency_ms')
        assert a == b
        assert a['gt_small'] + a['gt_medium'] + a['gt_large'] == len(anns)


def test_slurm_train_script(workdir, tmp_path):
    """tools/slurm_train.sh with a stand-in srun that starts 2 tasks:
    mmengine's Slurm launcher on CPU (gloo, ranks from SLURM_*, master
    address from scontrol), arguments passed through."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN.format(python=sys.executable))
    (bin_dir / 'scontrol').write_text('#!/bin/sh\necho 127.0.0.1\n')
    for tool in ('srun', 'scontrol'):
        (bin_dir / tool).chmod(0o755)
    record = tmp_path / 'srun.json'
    env = dict(PATH=f'{bin_dir}:{os.environ["PATH"]}',
               FAKE_SRUN_LOG=str(record), MASTER_PORT=str(free_port()))
    script = f'{REPO}/tools/slurm_train.sh'
    log = run(['bash', script, 'cpu', 'job1', 'ddp.py', 'wd_slurm',
               '--cfg-options', 'train_cfg.max_epochs=1',
               'default_hooks.checkpoint.interval=1'], workdir, GPUS='2',
              GPUS_PER_NODE='2', CPUS_PER_TASK='1', GRES='',
              SRUN_ARGS='--qos=debug --time=5', **env)
    assert json.loads(record.read_text()) == [
        '--partition=cpu', '--job-name=job1', '--ntasks=2',
        '--ntasks-per-node=2', '--cpus-per-task=1', '--kill-on-bad-exit=1',
        '--qos=debug', '--time=5', sys.executable, '-u',
        f'{REPO}/tools/train.py', 'ddp.py', '--work-dir=wd_slurm',
        '--launcher=slurm', '--cfg-options', 'train_cfg.max_epochs=1',
        'default_hooks.checkpoint.interval=1']
    assert "launcher = 'slurm'" in log and 'nccl -> gloo' in log
    ranks = load_ranks(workdir / 'wd_slurm')
    assert [r['world_size'] for r in ranks] == [2, 2]
    assert [len(r['seen']) for r in ranks] == [1, 1]
    assert_same_weights(ranks)
    assert (workdir / 'wd_slurm/epoch_1.pth').is_file()
    # GPU nodes: mmdet's defaults, 8 tasks with a GPU each
    run(['bash', script, 'gpu', 'job2', 'ddp.py', 'wd'], workdir,
        FAKE_SRUN_DRY='1', **env)
    args = json.loads(record.read_text())
    assert args[:6] == ['--partition=gpu', '--job-name=job2', '--gres=gpu:8',
                        '--ntasks=8', '--ntasks-per-node=8',
                        '--cpus-per-task=5']


@no_cuda
@pytest.mark.parametrize('launcher', ['pytorch', 'slurm', 'mpi'])
def test_launchers_init_gloo_without_cuda(launcher, monkeypatch):
    """msdet's process group for every mmengine launcher with the configs'
    nccl backend: gloo, no torch.cuda.set_device (one process here)."""
    env = dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', SLURM_PROCID='0',
               SLURM_NTASKS='1', SLURM_LOCALID='0', SLURM_NODELIST='node0',
               OMPI_COMM_WORLD_LOCAL_RANK='0', OMPI_COMM_WORLD_RANK='0',
               OMPI_COMM_WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(free_port()))
    for key, value in env.items():  # restored afterwards, also those
        monkeypatch.setenv(key, value)  # the launchers set themselves
    start_method = torch.multiprocessing.get_start_method(allow_none=True)
    try:
        init_distributed(launcher, dict(dist_cfg=dict(backend='nccl')))
        assert torch.distributed.get_backend() == 'gloo'
        assert torch.distributed.get_world_size() == 1
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        if start_method is None:  # init_dist sets 'spawn': undo
            torch.multiprocessing.set_start_method(None, force=True)


def cpu_cfg(**kwargs):
    cfg = Config(dict(launcher='none', optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))))
    cfg.merge_from_dict(kwargs)
    return cfg


@no_cuda
@pytest.mark.parametrize('settings, message', [
    (dict(optim_wrapper=dict(type='AmpOptimWrapper', dtype='float16')),
     r"optim_wrapper.type='AmpOptimWrapper'.*on CPU use "
     r"optim_wrapper.type='OptimWrapper'"),
    (dict(optim_wrapper=dict(_delete_=True, backbone=dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)),
        head=dict(type='mmengine.ApexOptimWrapper',
                  optimizer=dict(type='SGD', lr=0.1)))),
     r"optim_wrapper.head.type='ApexOptimWrapper'"),
    (dict(sync_bn='torch', launcher='pytorch',
          model_wrapper_cfg=dict(type='CPUCompatibleDDP')),
     r"sync_bn='torch' with launcher='pytorch'.*remove sync_bn"),
    (dict(launcher='slurm'),
     r"model_wrapper_cfg=None with launcher='slurm': mmengine's default DDP "
     r"wrapper needs CUDA device ids .* on CPU set model_wrapper_cfg=dict\("
     r"type='CPUCompatibleDDP'\)"),
    (dict(launcher='pytorch', model_wrapper_cfg=dict(
        type='MMDistributedDataParallel')),
     r"the DDP wrapper 'MMDistributedDataParallel' needs CUDA device ids"),
])
def test_cuda_only_settings_are_one_clear_error(settings, message):
    with pytest.raises(ValueError, match=message):
        check_cuda_only_settings(cpu_cfg(**settings))


@no_cuda
def test_cpu_fallbacks_are_not_errors():
    """What runs on CPU anyway: nccl (-> gloo), SyncBN in norm_cfg (-> BN),
    sync_bn without a launcher (mmengine ignores it), gathering results
    with collect_device='gpu' (gloo)."""
    check_cuda_only_settings(cpu_cfg(
        env_cfg=dict(dist_cfg=dict(backend='nccl')), launcher='pytorch',
        model_wrapper_cfg=dict(type='CPUCompatibleDDP'),
        model=dict(norm_cfg=dict(type='SyncBN')),
        test_evaluator=dict(type='CocoMetric', collect_device='gpu')))
    check_cuda_only_settings(cpu_cfg(sync_bn='torch'))


@no_cuda
def test_train_amp_fails_before_training(workdir):
    """tools/train.py --amp on CPU: the error, before anything is built."""
    with pytest.raises(ValueError, match='without --amp'):
        load_tool('train').main(['ddp.py', '--amp', '--work-dir', 'wd_amp'])
    assert not (workdir / 'wd_amp').exists()


def test_top_level_find_unused_parameters_with_a_wrapper_cfg():
    """mmengine ignores it when model_wrapper_cfg is set: one error saying
    where it goes; inside the wrapper's config, or without one, it is
    fine."""
    with pytest.raises(ValueError, match=r"find_unused_parameters=True at "
                       r"the top level .* write model_wrapper_cfg=dict\("
                       r"type='CPUCompatibleDDP', find_unused_parameters="
                       r"True\) instead"):
        check_wrapper_settings(cpu_cfg(
            find_unused_parameters=True,
            model_wrapper_cfg=dict(type='CPUCompatibleDDP')))
    check_wrapper_settings(cpu_cfg(find_unused_parameters=True))
    check_wrapper_settings(cpu_cfg(model_wrapper_cfg=dict(
        type='CPUCompatibleDDP', find_unused_parameters=True)))
