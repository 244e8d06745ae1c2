"""Design studies: Student-t intervals, paired differences by seed, the
schedule override, and tools/analysis/study.py end to end (train, sweep,
report, resume)."""
import json
import math
import os
import os.path as osp

import pytest
from mmengine.config import Config

from msdet.datasets.multiscale_coco import make_multiscale_coco
from msdet.evaluation.study import (markdown_table, paired_difference,
                                    summarize, t_quantile)
from conftest import REPO, load_tool, working_dir

STUDY = osp.join(REPO, 'configs', 'study')
R50 = osp.join(STUDY, 'backbones', 'mask_rcnn_r50_fpn_quarter_ms.py')
RESIZABLE_SUPER = osp.join(STUDY, 'resizable',
                           'mask_rcnn_rsr50_fpn_quarter_ms_super.py')
X50 = osp.join(STUDY, 'backbones', 'mask_rcnn_x50_fpn_quarter_ms.py')
#: two-sided 95% Student-t critical values (tables)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 30: 2.042}


def test_t_quantile_matches_tables():
    for df, ref in T975.items():
        assert t_quantile(0.975, df) == pytest.approx(ref, abs=1e-3)
    assert t_quantile(0.95, 5) == pytest.approx(2.015, abs=1e-3)
    assert t_quantile(0.025, 3) == pytest.approx(-3.182, abs=1e-3)
    with pytest.raises(ValueError, match='df'):
        t_quantile(0.975, 0)


def test_paired_difference_by_hand():
    pairs = [(0.30, 0.25), (0.28, 0.26), (0.35, 0.27)]  # d = .05 .02 .08
    mean, low, high, n = paired_difference(pairs)
    half = T975[2] * 0.03 / math.sqrt(3)  # sd(d) = 0.03
    assert (mean, n) == (pytest.approx(0.05), 3)
    assert (low, high) == (pytest.approx(0.05 - half, abs=1e-5),
                           pytest.approx(0.05 + half, abs=1e-5))
    assert paired_difference([(0.3, 0.1)]) == (pytest.approx(0.2), None,
                                               None, 1)


def _row(model, subnet, short, ap, ap_s=None, gflops=2.0, ms=10.0):
    row = dict(model=model, subnet=subnet, width=None, short_side=short,
               gflops_backbone=gflops / 2, gflops_model=gflops,
               latency_ms=ms)
    for task in ('bbox', 'segm'):
        for k in ('AP', 'AP50', 'AP75', 'AP_S', 'AP_M', 'AP_L'):
            row[f'{task}_{k}'] = None
    row.update(bbox_AP=ap, bbox_AP_S=ap_s)
    return row


def _run(design, seed, rows):
    return dict(design=design, seed=seed, rows=rows)


def test_summarize_pairs_by_seed():
    base = {0: 0.20, 1: 0.24, 2: 0.22}
    new = {0: 0.25, 1: 0.26, 2: 0.30, 3: 0.91}  # seed 3 has no pair
    runs = [_run('A', s, [_row('A', '', 256, ap), _row('A', '', 128, ap / 2)])
            for s, ap in base.items()]
    runs += [_run('B', s, [_row('B', '', 256, ap, ms=12.0 + s)])
             for s, ap in new.items()]
    summary = summarize(runs, 'A')
    rec = {(r['design'], r['short_side']): r for r in summary}
    b = rec['B', 256]
    assert b['seeds'] == [0, 1, 2, 3] and b['n'] == 4
    vals = list(new.values())
    mean = sum(vals) / 4
    sd = math.sqrt(sum((v - mean)**2 for v in vals) / 3)
    assert (b['bbox_AP_mean'], b['bbox_AP_sd']) == (pytest.approx(mean),
                                                     pytest.approx(sd))
    assert b['latency_ms_mean'] == pytest.approx(13.5)
    d = [new[s] - base[s] for s in base]  # .05 .02 .08
    assert b['baseline'] == 'A' and b['bbox_AP_diff_n'] == 3
    assert b['bbox_AP_diff'] == pytest.approx(sum(d) / 3)
    half = T975[2] * 0.03 / math.sqrt(3)
    assert b['bbox_AP_diff_low'] == pytest.approx(0.05 - half, abs=1e-5)
    assert b['bbox_AP_diff_high'] == pytest.approx(0.05 + half, abs=1e-5)
    # n/a numbers are skipped, not paired; the baseline has no difference
    assert b['bbox_AP_S_mean'] is None and b['bbox_AP_S_diff'] is None
    assert rec['A', 256]['baseline'] is None
    assert rec['A', 128]['bbox_AP_mean'] == pytest.approx(0.11)
    assert ('B', 128) not in rec
    table = markdown_table(summary)
    assert '| B | full | 256 | 4 | 1.00 | 2.00 | 13.5 | 43.0 ± ' in table
    assert f'| +5.0 [{100 * (0.05 - half):+.1f}, ' \
        f'{100 * (0.05 + half):+.1f}] |' in table


def test_several_baselines_cover_different_settings():
    runs = [_run('alone1', 0, [_row('alone1', 'r=1', 256, 0.30)]),
            _run('alone1', 1, [_row('alone1', 'r=1', 256, 0.32)]),
            _run('alone2', 0, [_row('alone2', 'r=2', 256, 0.20)]),
            _run('alone2', 1, [_row('alone2', 'r=2', 256, 0.22)]),
            _run('super', 0, [_row('super', 'r=1', 256, 0.31),
                              _row('super', 'r=2', 256, 0.25)]),
            _run('super', 1, [_row('super', 'r=1', 256, 0.35),
                              _row('super', 'r=2', 256, 0.24)])]
    rec = {(r['design'], r['subnet']): r
           for r in summarize(runs, ['alone1', 'alone2'])}
    assert rec['super', 'r=1']['baseline'] == 'alone1'
    assert rec['super', 'r=1']['bbox_AP_diff'] == pytest.approx(0.02)
    assert rec['super', 'r=2']['baseline'] == 'alone2'
    assert rec['super', 'r=2']['bbox_AP_diff'] == pytest.approx(0.035)
    with pytest.raises(ValueError, match='overlap'):
        summarize(runs, ['alone1', 'super'])
    with pytest.raises(ValueError, match='no finished run'):
        summarize(runs, 'nope')


def test_epochs_rescale_the_schedule():
    tool = load_tool('analysis/study')
    cfg = Config.fromfile(R50)
    assert (cfg.train_cfg.max_epochs, cfg.param_scheduler[1].milestones) \
        == (6, [5])
    tool.rescale_epochs(cfg, 15)
    assert (cfg.max_epochs, cfg.train_cfg.max_epochs,
            cfg.train_cfg.val_interval) == (15, 15, 15)
    assert cfg.default_hooks.checkpoint.interval == 1
    warmup, steps = cfg.param_scheduler
    assert (warmup.begin, warmup.end) == (0, 100)  # iterations: unchanged
    assert (steps.end, steps.milestones) == (15, [13])  # 12.5 half up
    tool.rescale_epochs(cfg, 2)
    assert (steps.end, steps.milestones) == (2, [2])
    # the sub-network loop of the super-network configs is epoch-based too
    super_net = Config.fromfile(RESIZABLE_SUPER)
    assert super_net.train_cfg.type == 'SubnetEpochBasedTrainLoop'
    tool.rescale_epochs(super_net, 2)
    assert super_net.train_cfg.max_epochs == 2
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=10)
    with pytest.raises(ValueError, match='IterBasedTrainLoop'):
        tool.rescale_epochs(cfg, 2)


def test_bad_arguments_fail_before_anything_runs(tmp_path):
    tool = load_tool('analysis/study')
    base = [R50, X50, '--seeds', '0', '--work-dir', str(tmp_path / 's')]
    for extra, match in ((['--names', 'a'], 'one distinct name'),
                         (['--names', 'a', 'a'], 'one distinct name'),
                         (['--names', 'a', 'b/c'], 'name'),
                         (['--baseline', 'zz'], 'not a design'),
                         (['--parallel', '0'], '--parallel'),
                         (['--ci', '1.5'], '--ci')):
        with pytest.raises(ValueError, match=match):
            tool.main(base + extra)
    with pytest.raises(FileNotFoundError, match='nope.py'):
        tool.main(['nope.py', '--seeds', '0', '--work-dir', str(tmp_path)])
    assert not (tmp_path / 's').exists()


def _mtimes(root, name):
    return {p: os.stat(p).st_mtime_ns for p in sorted(
        str(q) for q in root.rglob(name))}


def test_study_tool_trains_sweeps_reports_and_resumes(tmp_path, capsys):
    """2 configs x 2 seeds, 2 iterations each, one test scale."""
    make_multiscale_coco(tmp_path / 'data' / 'coco_multiscale',
                         num_train=4, num_val=2, seed=0)
    tool = load_tool('analysis/study')
    work = tmp_path / 'study'
    argv = [R50, X50, '--names', 'R50', 'X50', '--seeds', '0', '1',
            '--epochs', '1', '--cfg-options', 'train_dataloader.batch_size=2',
            '--scales', '128', '--parallel', '2', '--threads', '1',
            '--work-dir', str(work)]
    with working_dir(tmp_path):
        summary = tool.main(argv)
    runs = {(d, s): json.loads((work / 'runs' / d / f'seed{s}' /
                                'result.json').read_text())
            for d in ('R50', 'X50') for s in (0, 1)}
    for (design, seed), res in runs.items():
        assert (res['design'], res['seed']) == (design, seed)
        assert res['train']['iters'] == 2 and res['train']['epochs'] == 1
        assert res['train']['cpu_s'] > 0
        (row, ) = res['rows']
        assert row['short_side'] == 128 and row['gflops_model'] > 0
        cfg = Config.fromfile(str(work / 'runs' / design / f'seed{seed}' /
                                  'config.py'))
        assert cfg.randomness.seed == seed and cfg.train_cfg.max_epochs == 1
    # the table's differences are the per-run results paired by seed
    rec = {r['design']: r for r in summary}
    for key in ('bbox_AP', 'segm_AP'):
        diffs = [runs['X50', s]['rows'][0][key] -
                 runs['R50', s]['rows'][0][key] for s in (0, 1)]
        assert rec['X50'][f'{key}_diff'] == pytest.approx(sum(diffs) / 2)
    for name in ('study.md', 'study_summary.csv', 'study_summary.json',
                 'study_scale_bbox.png', 'study_flops_segm.png'):
        assert (work / name).is_file(), name
    assert '| X50 | full | 128 | 2 |' in (work / 'study.md').read_text()

    # resume: complete runs are skipped, nothing retrains
    logs, results = _mtimes(work, 'train.log'), _mtimes(work, 'result.json')
    capsys.readouterr()
    with working_dir(tmp_path):
        tool.main(argv)
    assert '4 of 4 runs complete; 0 to run' in capsys.readouterr().out
    assert _mtimes(work, 'train.log') == logs
    assert _mtimes(work, 'result.json') == results
    # a run whose sweep did not complete sweeps again, without training
    (work / 'runs/X50/seed1/result.json').unlink()
    with working_dir(tmp_path):
        tool.main(argv)
    assert _mtimes(work, 'train.log') == logs
    assert (work / 'runs/X50/seed1/result.json').is_file()

    # report-only recomputes from the per-run files: known numbers in,
    # their paired differences and t-interval out
    known = {('R50', 0): 0.20, ('R50', 1): 0.30, ('X50', 0): 0.26,
             ('X50', 1): 0.32}  # d = .06, .02
    for (design, seed), ap in known.items():
        path = work / 'runs' / design / f'seed{seed}' / 'result.json'
        res = json.loads(path.read_text())
        res['rows'][0]['bbox_AP'] = ap
        path.write_text(json.dumps(res))
    with working_dir(tmp_path):
        summary = tool.main(argv + ['--report-only', '--report-name', 'k'])
    x50 = {r['design']: r for r in summary}['X50']
    half = T975[1] * math.sqrt(0.0008) / math.sqrt(2)
    assert x50['bbox_AP_diff'] == pytest.approx(0.04)
    assert x50['bbox_AP_diff_low'] == pytest.approx(0.04 - half, abs=1e-4)
    assert '| +4.0 [' in (work / 'k.md').read_text()

    # another schedule in the same work dir is refused
    other = list(argv)
    other[other.index('--epochs') + 1] = '2'
    with working_dir(tmp_path), pytest.raises(ValueError,
                                              match='another config'):
        tool.main(other)


def test_gpu_slots_commands_and_dry_run(tmp_path, capsys):
    """Parallel GPU runs get their own devices and master port; several
    GPUs per run go through torchrun with the pytorch launcher."""
    tool = load_tool('analysis/study')
    argv = [R50, X50, '--seeds', '0', '--work-dir', str(tmp_path / 's'),
            '--gpus', '2', '--parallel', '2', '--gpu-ids', '4', '5', '6',
            '7', '--port', '29600', '--train-args=--amp', '--dry-run']
    args = tool.parse_args(argv)
    tool.check_args(args)
    slots = tool.slots(args)
    assert slots == [dict(gpus=[4, 5], port=29600),
                     dict(gpus=[6, 7], port=29601)]
    env = tool.environment(args, slots[1])
    assert env['CUDA_VISIBLE_DEVICES'] == '6,7'
    run = tool.Run(str(tmp_path / 's'), 'R50', R50, 0)
    cmd = tool.train_command(run, args, slots[1])
    assert cmd[1:5] == ['-m', 'torch.distributed.run', '--nproc_per_node=2',
                        '--master_port=29601']
    assert cmd[-3:] == ['--amp', '--launcher', 'pytorch']
    one = tool.command('x.py', ['a'], dict(gpus=[3], port=1))
    assert one[1:] == ['x.py', 'a']  # one GPU: a plain process
    with pytest.raises(ValueError, match='needs 6 GPUs'):
        tool.slots(tool.parse_args(argv[:-11] + ['--gpus', '3', '--parallel',
                                                 '2', '--gpu-ids', '0']))
    tool.main(argv)
    out = capsys.readouterr().out
    assert out.count('tools/train.py') == 2 and out.count('--master_port') == 4
    assert not (tmp_path / 's').exists()  # a dry run writes nothing
