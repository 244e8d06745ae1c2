"""The benchmark suite (bench/): what it measures and how it derives its
ratios, on ``--quick`` runs (tiny shapes and models: the numbers are not
measurements) and on a timer that the test controls."""
import json
import statistics

import pytest
import torch

from bench import convs, model_zoo, run, timing

ZOO = """# zoo
intro
<!-- bench:start -->
old table
<!-- bench:end -->
DEMO_RESULTS
"""


def per_round_median(times, base):
    return statistics.median(t / b for t, b in zip(times, base))


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench')
    zoo = out / 'model_zoo.md'
    zoo.write_text(ZOO)
    results = run.main([
        '--quick', '--backbones', 'PS-ResNet', '--reps', '2',
        '--backbone-reps', '2', '--detector-reps', '1', '--det-size', '64',
        '64', '--malloc', 'default', '--out-dir', str(out), '--model-zoo',
        str(zoo), '--sections', 'convs', 'backbones', 'profile',
        'complexity', 'detector'  # compile: tests/test_compile.py
    ])
    return out, zoo, results


def test_quick_run_writes_json_and_markdown(quick):
    out, _, results = quick
    with open(out / 'bench_quick_cpu.json') as f:
        saved = json.load(f)
    assert saved['config']['quick'] and saved['machine']['cores'] >= 1
    assert saved['config']['malloc'] == 'default'  # no process-wide change
    assert set(saved) == {'machine', 'config', 'convs', 'backbones',
                          'profile', 'complexity', 'detector'}
    assert saved['machine']['torch'] == torch.__version__
    md = (out / 'bench_quick_cpu.md').read_text()
    for title in ('## One 3x3 layer', '## Backbones: eval forward',
                  '## Backbones: eval forward time by module type',
                  '## Backbones: params', '## Mask R-CNN training'):
        assert title in md
    assert 'PASS' not in md and 'MISS' not in md  # it measures, no verdicts


def test_conv_ratios_are_against_the_dense_conv_of_the_same_run(quick):
    rows = quick[2]['convs']
    assert [(tuple(r['shape']), r['mode']) for r in rows] == [
        (s, m) for s in convs.QUICK_SHAPES for m in ('fwd', 'fwd+bwd')]
    for row in rows:
        times = row['times_ms']
        ratio = {name: per_round_median(times[name], times['dense'])
                 for name in convs.VARIANTS}
        assert row['ratio']['dense'] == 1.0
        for name in convs.VARIANTS:  # rounded to 4 decimals
            assert row['ratio'][name] == pytest.approx(ratio[name], abs=6e-5)
        assert row['psconv_speedup_vs_masked3'] == pytest.approx(
            ratio['masked3'] / ratio['psconv'], abs=6e-5)
    assert 'psconv_convs' in rows[0]['ratio']  # forward diagnostic


def test_backbones_complexity_and_detector_pair_with_baselines(quick):
    results = quick[2]
    fwd = {(r['name'], r['mode'], tuple(r['size']), r['threads']): r
           for r in results['backbones']}
    release = 'PS-ResNet-50 release form'
    assert {k[0] for k in fwd} == {'ResNet-50', 'PS-ResNet-50', release}
    # eval forward at both sizes and a training step, at 1 and 2 threads
    assert {k[1:] for k in fwd} == {
        (mode, size, n) for n in (1, 2) for mode, size in (
            ('eval', (64, 64)), ('eval', (64, 96)), ('train', (64, 64)))}
    for (name, *case), row in fwd.items():
        base = fwd[('ResNet-50', *case)]
        assert len(row['times_ms']) == 2
        assert row['ratio'] == pytest.approx(
            per_round_median(row['times_ms'], base['times_ms']), abs=6e-5)
    comp = {r['name']: r for r in results['complexity']}
    # PSConv keeps the dense conv's weight and multiply-adds; the release's
    # three convolutions do not
    assert comp['PS-ResNet-50']['params_m'] == comp['ResNet-50']['params_m']
    assert comp['PS-ResNet-50']['gflops'] == comp['ResNet-50']['gflops']
    assert comp[release]['gflops'] > comp['PS-ResNet-50']['gflops']
    assert comp['ResNet-50']['paper_gflops'] == 4.089
    det = {r['name']: r for r in results['detector']}
    assert det['ResNet-50']['peak_ratio'] == 1.0
    ps = det['PS-ResNet-50']
    assert ps['baseline'] == 'ResNet-50'
    assert len(ps['times_ms']) == len(ps['baseline_times_ms']) == 1
    assert ps['ratio'] == pytest.approx(
        per_round_median(ps['times_ms'], ps['baseline_times_ms']), abs=6e-5)
    if ps['peak_mib'] is not None:
        assert ps['peak_ratio'] == pytest.approx(
            ps['peak_mib'] / det['ResNet-50']['peak_mib'], abs=6e-5)


def test_measure_pairs_each_round_with_its_baseline(monkeypatch):
    """On a timer the test controls: every round times each function once
    (rotating which goes first), after one untimed warm-up call each, and
    a ratio is the median of the per-round ratios, not a ratio of medians
    (here 1.5, where the medians are equal)."""
    clock, calls = [0.0], []
    costs = dict(base=[9.0, 0.010, 0.020, 0.040],  # warm-up, 3 rounds
                 cand=[9.0, 0.015, 0.020, 0.100])

    def timed(name):
        def call():
            clock[0] += costs[name][sum(c == name for c in calls)]
            calls.append(name)
        return call

    monkeypatch.setattr(timing.time, 'perf_counter', lambda: clock[0])
    res = timing.measure(dict(base=timed('base'), cand=timed('cand')),
                         'base', reps=3)
    assert calls == ['base', 'cand', 'base', 'cand', 'cand', 'base',
                     'base', 'cand']
    assert res['base']['times_ms'] == [10.0, 20.0, 40.0]
    assert res['cand']['times_ms'] == [15.0, 20.0, 100.0]
    assert res['base']['ratio'] == 1.0
    assert res['cand']['ratio'] == pytest.approx(1.5)  # of 1.5, 1.0, 2.5
    assert res['cand']['ms'] == res['base']['ms'] == 20.0
    assert res['cand']['min_ms'] == 15.0
    with pytest.raises(KeyError, match='baseline'):
        timing.measure(dict(cand=timed('cand')), 'base', reps=1)


def test_model_zoo_table_between_markers_only(quick):
    _, zoo, _ = quick
    text = zoo.read_text()
    head, rest = text.split(model_zoo.START)
    table, tail = rest.split(model_zoo.END)
    assert head == '# zoo\nintro\n' and tail == '\nDEMO_RESULTS\n'
    assert 'old table' not in table and 'PS-ResNet-50' in table
    assert 'no CUDA run yet' in table
    # the ratios of the run, as measured
    row = next(line for line in table.splitlines()
               if line.startswith('| PS-ResNet-50 |'))
    det = next(r for r in quick[2]['detector']
               if r['name'] == 'PS-ResNet-50')
    assert f"| {det['ratio']:.3f} |" in row
    with pytest.raises(ValueError, match='bench:start'):
        bad = zoo.parent / 'bad.md'
        bad.write_text('no markers\n')
        model_zoo.update(str(bad), quick[2])


def test_masked_three_conv_reference_is_a_psconv_rate_layout():
    """Every kernel belongs to exactly one of the three convs, and each
    filter and each input channel mixes rates 1, 2, 4 as 2:1:1, like
    PSConv's (1, 2, 1, 4) pattern."""
    m = convs.MaskedThreeConv(16)
    dense = m.conv.weight.abs().sum((2, 3)) > 0
    part = torch.arange(16) // 4
    rate2 = part[:, None] == part[None, :]
    rate4 = part[:, None] == (part[None, :] + 2) % 4
    assert not (dense & rate2).any() and not (dense & rate4).any()
    assert (dense | rate2 | rate4).all()
    for mask, count in ((dense, 8), (rate2, 4), (rate4, 4)):
        assert (mask.sum(0) == count).all() and (mask.sum(1) == count).all()
    x = torch.randn(1, 16, 9, 9)
    assert m(x).shape == x.shape


def test_runs_of_several_processes_merge_round_by_round(quick):
    rows = quick[2]['convs']
    merged = convs.merge([rows, rows])
    for row, one in zip(merged, rows):
        times = row['times_ms']
        assert row['processes'] == 2 and row['shape'] == one['shape']
        assert times['psconv'] == 2 * one['times_ms']['psconv']
        assert row['ratio']['psconv'] == pytest.approx(
            per_round_median(times['psconv'], times['dense']), abs=6e-5)


def test_conv_section_over_fresh_processes(tmp_path):
    """``--processes 2``: the conv section runs in two fresh
    ``python -m bench.run`` processes (no sys.path set up for them) and
    their rounds are merged."""
    results = run.main([
        '--quick', '--sections', 'convs', '--processes', '2', '--reps', '2',
        '--malloc', 'default', '--out-dir', str(tmp_path)
    ])
    for row in results['convs']:
        times = row['times_ms']
        assert row['processes'] == 2 and len(times['dense']) == 2
        assert row['ratio']['psconv'] == pytest.approx(
            per_round_median(times['psconv'], times['dense']), abs=6e-5)


def test_profile_splits_the_forward_by_module_type(quick):
    """Each module type's own time (its call less its children's): the
    shares of one forward sum to 1, and each design's convolutions show
    under their own class."""
    rows = {(r['name'], tuple(r['size'])): r for r in quick[2]['profile']}
    assert set(rows) == {(n, s) for n in ('ResNet-50', 'PS-ResNet-50',
                                          'PS-ResNet-50 release form')
                         for s in ((64, 64), (64, 96))}
    for (name, _), row in rows.items():
        # each figure rounded: shares to 1e-4, ms to 1e-3
        assert sum(row['share'].values()) == pytest.approx(1, abs=2e-3)
        assert sum(row['ms'].values()) == pytest.approx(row['total_ms'],
                                                         abs=2e-2)
        assert ('PSConv2d 3x3' in row['ms']) == (name == 'PS-ResNet-50')
        assert ('Conv2d 3x3' in row['ms']) == (name != 'PS-ResNet-50')
        assert ('MaskedThreeConv' in row['ms']) == ('release' in name)
    assert 'Where the time goes' in quick[1].read_text()


def test_compile_section_pairs_each_design_with_its_compiled_baseline(
        monkeypatch):
    """A design and its baseline are timed eager and compiled in the same
    rounds: its ratio to the baseline eager / eager and compiled / compiled
    is the per-round median. (Dynamo's ``eager`` backend keeps this test
    short; tests/test_compile.py runs inductor on every design.)"""
    from functools import partial

    from bench import backbones, report
    monkeypatch.setattr(torch, 'compile',
                        partial(torch.compile, backend='eager'))
    specs = [s for s in run.select_backbones(['PS-ResNet-50'])
             if 'release' not in s.name]
    assert [s.name for s in specs] == ['ResNet-50', 'PS-ResNet-50']
    rows = backbones.compiled(specs, True, 2, 'cpu', (64, 64), (64, 64))
    assert [(r['name'], r['mode']) for r in rows] == [
        (n, m) for n in ('ResNet-50', 'PS-ResNet-50')
        for m in ('eval', 'train')]
    for row in rows:
        assert 'error' not in row
        assert row['ratio'] == pytest.approx(per_round_median(
            row['times_ms'], row['eager_times_ms']), abs=6e-5)
        if row['name'] == 'ResNet-50':
            assert 'baseline' not in row and 'baseline_compile_s' not in row
            continue
        assert row['baseline'] == 'ResNet-50' and row['baseline_compile_s']
        assert row['eager_x_baseline'] == pytest.approx(per_round_median(
            row['eager_times_ms'], row['baseline_eager_times_ms']),
            abs=6e-5)
        assert row['compiled_x_baseline'] == pytest.approx(per_round_median(
            row['times_ms'], row['baseline_compiled_times_ms']), abs=6e-5)
    table = report.compile_table(rows)
    assert 'x baseline, both compiled' in table
    assert f"| {rows[2]['compiled_x_baseline']:.3f} |" in table


def test_module_timer_own_times_add_up():
    from torch import nn

    from bench.backbones import ModuleTimer
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Sequential(nn.ReLU(),
                                                             nn.Conv2d(8, 8,
                                                                       1)))
    timer = ModuleTimer(model)
    model(torch.randn(1, 3, 16, 16))
    timer.remove()
    assert set(timer.own) == {'Sequential', 'Conv2d 3x3', 'Conv2d 1x1',
                              'ReLU'}
    assert all(v >= 0 for v in timer.own.values())
    assert not model._forward_hooks and not model[0]._forward_pre_hooks


def test_release_form_replaces_every_psconv_keeping_shapes():
    """PS-ResNet in the release's form: every PSConv (strided ones too) is
    the three convolutions, with the same output shapes."""
    from bench.backbones import SPECS, build
    from msdet.ops import PSConv2d
    spec = next(s for s in SPECS if s.name == 'PS-ResNet-50 release form')
    plain = build(spec._replace(form=None), quick=True)
    release = build(spec, quick=True)
    assert not any(isinstance(m, PSConv2d) for m in release.modules())
    threes = [m for m in release.modules()
              if isinstance(m, convs.MaskedThreeConv)]
    assert len(threes) == 16
    assert {m.conv.stride for m in threes} == {(1, 1), (2, 2)}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert [o.shape for o in release(x)] == [o.shape for o in plain(x)]
