"""The issue's targets, checked on a run's results: PASS / MISS with the
margin, and for a MISS the measured reason."""
from . import convs

#: (check, bound, sense): ``le`` = value must be <= bound, ``ge`` = >=.
PSCONV_FWD, PSCONV_FWD_BWD, PSCONV_VS_MASKED = 1.25, 1.4, 1.3
PS_BACKBONE, ELASTIC_LATENCY, DETECTOR_MEMORY = 1.10, 1.15, 1.2
#: Blocks per stage of ResNet-50 (each has one 3x3 conv of the stage shape).
RESNET50_BLOCKS = (3, 4, 6, 3)


def _check(name, subject, value, bound, sense, why=None):
    if value is None:
        return dict(name=name, subject=subject, target=f'{sense} {bound}',
                    value=None, status='SKIP', margin=None, why=why)
    ok = value <= bound if sense == '<=' else value >= bound
    # positive: headroom; negative: missed by that fraction of the bound
    margin = (bound - value) / bound if sense == '<=' else \
        (value - bound) / bound
    return dict(name=name, subject=subject, target=f'{sense} {bound}',
                value=round(value, 4), status='PASS' if ok else 'MISS',
                margin=round(margin, 4), why=None if ok else why)


def _conv_why(row, fwd_row):
    c, h, w = row['shape']
    n = row['batch']
    parts = []
    if fwd_row is not None and 'psconv_convs' in fwd_row['ratio']:
        only = fwd_row['ratio']['psconv_convs']
        moved = fwd_row['ratio']['psconv'] - only
        parts.append(
            f"its per-rate convolutions alone ({fwd_row['plan']} plan) take "
            f'{only:.2f}x the dense conv (narrow/dilated oneDNN kernels below '
            f'dense efficiency) and its data movement (output block sums; '
            f'the blocks plan also transposes its input and output) adds '
            f'{moved:.2f}x')
    if c * c * 9 > n * c * h * w and row['mode'] == 'fwd+bwd':
        parts.append(f'weight-bound shape: the weight is '
                     f'{9 * c / (n * h * w):.1f}x the input, and in training '
                     'PSConv gathers it into per-rate weights on every call '
                     '(eval mode keeps them) and scatters their gradients '
                     'back')
    if row['mode'] == 'fwd+bwd':
        parts.append('the backward runs the per-rate convolutions again for '
                     'input and weight gradients and gathers the output '
                     'gradient of every rate but the first')
    return '; '.join(parts)


def _conv_checks(rows):
    checks = []
    fwd = {tuple(r['shape']): r for r in rows if r['mode'] == 'fwd'}
    for row in rows:
        if row['kind'] != 'stage':
            continue
        subject = 'x'.join(map(str, row['shape']))
        why = _conv_why(row, fwd.get(tuple(row['shape'])))
        if row['mode'] == 'fwd':
            checks.append(_check('PSConv forward / dense 3x3', subject,
                                 row['ratio']['psconv'], PSCONV_FWD, '<=',
                                 why))
            checks.append(_check(
                'PSConv speed-up over three masked convs', subject,
                row['psconv_speedup_vs_masked3'], PSCONV_VS_MASKED, '>=',
                'the three-convolution form does 1.5x the multiply-adds but '
                'moves no data; ' + why))
        else:
            checks.append(_check('PSConv forward+backward / dense 3x3',
                                 subject, row['ratio']['psconv'],
                                 PSCONV_FWD_BWD, '<=', why))
    return checks


def _conv_share(complexity):
    """Share of ResNet-50's FLOPs (224x224, fc included) in its 3x3 convs."""
    base = next((r for r in complexity if r['name'] == 'ResNet-50'
                 and 'gflops' in r), None)
    if base is None:
        return None
    flops = sum(n * c * c * 9 * h * w for n, (c, h, w) in zip(
        RESNET50_BLOCKS, convs.STAGE_SHAPES))
    return flops / 1e9 / base['gflops']


def _backbone_checks(rows, complexity, conv_rows, quick):
    checks = []
    share = None if quick else _conv_share(complexity)
    stage = [r['ratio']['psconv'] for r in conv_rows
             if r['kind'] == 'stage' and r['mode'] == 'fwd']
    for row in rows:
        if 'ratio' not in row:
            continue
        subject = f"{row['size'][0]}x{row['size'][1]}"
        if row['name'] == 'PS-ResNet-50':
            why = 'PSConv layers are slower than dense 3x3 convs'
            if share and stage:
                mean = sum(stage) / len(stage)
                why = (f'the 3x3 convs are {share:.0%} of ResNet-50 FLOPs; '
                       f'at the measured PSConv layer ratio (mean {mean:.2f}x '
                       f'over the stage shapes) the backbone is expected at '
                       f'~{1 + share * (mean - 1):.2f}x')
            checks.append(_check('PS-ResNet-50 forward / ResNet-50', subject,
                                 row['ratio'], PS_BACKBONE, '<=', why))
        elif row['name'] == 'Elastic-ResNeXt-50 32x4d':
            checks.append(_check(
                'Elastic-ResNeXt-50 forward / ResNeXt-50', subject,
                row['ratio'], ELASTIC_LATENCY, '<=',
                'each Elastic block adds 2x2 average pooling and bilinear '
                'upsampling and splits its convs into two half-width '
                'branches (same FLOPs in more, smaller, grouped ops), and '
                'the Elastic layout has 22 blocks instead of 16'))
    return checks


def _flops_checks(complexity):
    by_name = {r['name']: r for r in complexity if 'gflops' in r}
    checks = []
    for name, base in (('Elastic-ResNeXt-50 32x4d', 'ResNeXt-50 32x4d'),
                       ('ScaleNet-50', 'ResNet-50')):
        if name in by_name and base in by_name:
            checks.append(_check(
                f'{name.split()[0]} GFLOPs / {base.split()[0]}', '224x224',
                by_name[name]['gflops'] / by_name[base]['gflops'], 1.0, '<=',
                'the architecture itself (channel allocation / block layout)'
                ' costs more multiply-adds than its baseline'))
    return checks


#: Why a backbone's training iteration holds more memory than its baseline's.
MEMORY_WHY = (
    ('Elastic', 'the Elastic layout has 22 blocks instead of 16 and each '
     "keeps both branches' activations (the low-resolution one at a quarter "
     'of the pixels) for the backward'),
    ('Resizable', 'each resized stage keeps its resized input and its '
     'scale-aware BN activations, and the outputs are resized back to the '
     "detector's strides (full-size maps kept for the backward)"),
    ('ScaleNet', "each SA block keeps its pooled branches' maps and their "
     'upsampled outputs for the backward'),
)


def _memory_checks(rows):
    checks = []
    for row in rows:
        if row.get('name') == row.get('baseline') or 'skipped' in row:
            continue
        why = next((w for key, w in MEMORY_WHY if key in row['name']),
                   'the backbone keeps more activations for its backward')
        checks.append(_check(
            'Mask R-CNN training peak memory / baseline', row['name'],
            row.get('peak_ratio'), DETECTOR_MEMORY, '<=', why))
    return checks


def check(results):
    """All checks on ``results`` (the sections that ran)."""
    conv_rows = results.get('convs', [])
    complexity = results.get('complexity', [])
    return (_conv_checks(conv_rows) +
            _backbone_checks(results.get('backbones', []), complexity,
                             conv_rows, results['config']['quick']) +
            _flops_checks(complexity) +
            _memory_checks(results.get('detector', [])))
