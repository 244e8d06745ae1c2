"""Plain-text tables of COCO metrics as users read them in logs and README."""

COCO_KEYS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
COCO_HEADER = ('AP', 'AP50', 'AP75', 'AP_S', 'AP_M', 'AP_L')


def coco_table(metrics: dict, tasks=('bbox', 'segm')) -> str:
    """Markdown table, one row per task present in mmdet CocoMetric output.

    ``metrics`` holds keys like ``coco/bbox_mAP_s`` (as returned by
    ``runner.test()``); values are percentages with one decimal.
    """
    rows = ['| task | ' + ' | '.join(COCO_HEADER) + ' |',
            '|---' * (len(COCO_HEADER) + 1) + '|']
    for task in tasks:
        vals = [metrics.get(f'coco/{task}_{k}') for k in COCO_KEYS]
        if all(v is None for v in vals):
            continue
        cells = ['n/a' if v is None or v < 0 else f'{100 * v:.1f}'
                 for v in vals]
        rows.append(f'| {task} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def metrics_table(metrics: dict) -> str:
    """COCO metrics as :func:`coco_table`; any others (e.g. mmseg's mIoU)
    as one ``| metric | value |`` row each."""
    if any(k.startswith('coco/') for k in metrics):
        return coco_table(metrics)
    rows = ['| metric | value |', '|---|---|']
    rows += [f'| {k} | {v:.4g} |' for k, v in metrics.items()
             if isinstance(v, (int, float))]
    return '\n'.join(rows)
