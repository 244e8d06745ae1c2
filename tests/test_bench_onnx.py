"""The ONNX benchmark (bench/onnx.py) on a ``--quick`` run: scaled-down
backbones at tiny inputs, exported, run in onnxruntime and compared with
PyTorch (the numbers are not measurements)."""
import json

import pytest

pytest.importorskip('onnx', reason="needs onnx and onnxruntime: pip install "
                    "'msdet[deploy]'")
pytest.importorskip('onnxruntime', reason="needs onnx and onnxruntime: pip "
                    "install 'msdet[deploy]'")

from bench import onnx as bench_onnx  # noqa: E402

ZOO = """# zoo
## ONNX export
intro
<!-- onnx:start -->
old table
<!-- onnx:end -->
after
"""
NAMES = ['PS-ResNet-50',
         'Resizable-ResNet-50 0.75/0.625/0.625/1']


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench_onnx')
    zoo = out / 'model_zoo.md'
    zoo.write_text(ZOO)
    results = bench_onnx.main([
        '--quick', '--backbones', 'PS-ResNet', '0.75/0.625',
        '--reps', '1', '--malloc', 'default', '--out-dir', str(out),
        '--model-zoo', str(zoo)
    ])
    return out, zoo, results


def test_one_row_per_backbone_with_small_errors_at_both_sizes(quick):
    out, _, results = quick
    assert [r['name'] for r in results['rows']] == NAMES
    assert results['config']['sizes'] == ['128x128', '128x192']
    assert results['config']['threads'] == 1
    for row in results['rows']:
        assert set(row['sizes']) == {'128x128', '128x192'}
        for s in row['sizes'].values():
            # float32 in two runtimes: a real difference, but a small one
            assert 0 < s['error_random'] < 1e-5
            assert 0 < s['error_image'] < 1e-5
            assert s['error_random_output'].startswith('feat')
            assert s['torch_ms'] > 0 and s['onnxruntime_ms'] > 0
            assert s['torch_over_onnxruntime'] > 0
    with open(out / 'onnx_quick_cpu.json') as f:
        assert json.load(f)['rows'] == results['rows']


def test_table_is_written_between_the_markers(quick):
    out, zoo, _ = quick
    text = zoo.read_text()
    assert 'old table' not in text
    assert text.startswith('# zoo\n## ONNX export\nintro\n<!-- onnx:start -->')
    assert text.endswith('<!-- onnx:end -->\nafter\n')
    table = [line for line in text.splitlines() if line.startswith('| ')]
    assert table[0].startswith('| backbone | max rel. error')
    assert '128x192 PyTorch / onnxruntime' in table[0]
    assert [line.split(' | ')[0][2:] for line in table[1:]] == NAMES
    assert 'python -m bench.onnx --quick' in text
    assert '1 thread(s) for both PyTorch and onnxruntime' in text
    assert (out / 'onnx_quick_cpu.md').read_text() in text


@pytest.mark.parametrize('argv, message', [
    (['--backbones', 'MobileNet'], 'matches none of'),
    (['--det-size', '100', '128'], 'multiples of 32'),
    (['--threads', '0'], '--threads 0; allowed: 1 or more'),
])
def test_bad_options_are_one_message(argv, message, tmp_path):
    with pytest.raises(SystemExit, match=message):
        bench_onnx.main(['--quick', '--out-dir', str(tmp_path)] + argv)


def test_latency_ratio_is_the_median_of_per_run_ratios(monkeypatch):
    """Runs alternate; the ratio pairs each PyTorch run with the
    onnxruntime run right after it (a load spike hits one pair)."""
    import statistics

    import torch

    from msdet.deploy import verify

    torch_ms, ort_ms = [10, 40, 12, 11], [5, 10, 6, 50]
    clock, now = [], 0.0
    for t, o in zip([99] + torch_ms, [99] + ort_ms):  # one warm-up run
        clock += [now, now + t / 1e3, now + (t + o) / 1e3]
        now += 1.0
    ticks = iter(clock)
    monkeypatch.setattr(verify.time, 'perf_counter', lambda: next(ticks))

    class Part:
        input_names = ('input', )

        def reference(self, x):
            return [x]

    class Session:
        def run(self, outputs, feeds):
            return [feeds['input']]

    result = verify.latency(Part(), Session(), (torch.zeros(1), ),
                            repeat=4, warmup=1)
    assert result['torch'] == pytest.approx(statistics.median(torch_ms))
    assert result['onnxruntime'] == pytest.approx(statistics.median(ort_ms))
    # 2, 4, 2, 0.22: median 2.0, where the ratio of medians is 1.44
    assert result['ratio'] == pytest.approx(2.0)
