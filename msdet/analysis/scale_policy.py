"""Scale-policy score of Elastic blocks (ELASTIC paper 4.1.1, eq. 5, fig. 6).

For every Elastic block and every image,

    S = mean(x_high) - mean(x_low),

the mean activation of the high-resolution branch minus that of the
low-resolution branch, both taken after the branch's 3x3 conv, BN and ReLU
(``relu(norm2(.))`` and ``relu(norm2_low(.))`` of an ``ElasticBottleneck``),
over all channels and positions of the image. Eq. 5 divides the sum over
the 2H x 2W high-resolution map by 4HWC (H, W, C: the low-resolution map),
i.e. takes its mean; where a side is odd (2H - 1 high, H low) both are
still plain means. Scores come from forward hooks on the two BN layers; the
model code is not changed. Run the model in eval mode ("fixed batch
normalizations") on unpadded images (batch size 1 or equal sizes): padding
would enter the means.
"""
import csv
import os

import numpy as np
import torch
import torch.nn.functional as F

from ..models.backbones.elastic_resnext import ElasticBottleneck
from ..utils.fileio import atomic_open, dump_json


def elastic_blocks(model):
    """(name, block) of every Elastic block of ``model``, in forward order."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, ElasticBottleneck) and m.elastic]


class ScalePolicyRecorder:
    """Context manager recording per-image scale-policy scores with hooks.

    Example::

        with ScalePolicyRecorder(model) as rec:
            model(images)
        rec.scores()  # (num_images, num_blocks) array of S
    """

    def __init__(self, model):
        self.blocks = elastic_blocks(model)
        if not self.blocks:
            raise ValueError(
                f'{type(model).__name__} has no Elastic block (an '
                'ElasticBottleneck with elastic=True); the scale-policy '
                'score needs an Elastic model.')
        self.names = [name for name, _ in self.blocks]
        self._means = {b: ([], []) for b in range(len(self.blocks))}
        self._handles = []

    def _hook(self, block, branch):
        def record(module, inputs, output):
            mean = F.relu(output.detach()).mean(dim=(1, 2, 3))
            self._means[block][branch].append(mean.float().cpu())
        return record

    def __enter__(self):
        for b, (_, block) in enumerate(self.blocks):
            self._handles += [
                block.norm2.register_forward_hook(self._hook(b, 0)),
                block.norm2_low.register_forward_hook(self._hook(b, 1)),
            ]
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def scores(self):
        """S per image (rows, in forward order) and block (columns)."""
        cols = []
        for b in range(len(self.blocks)):
            high, low = (torch.cat(m) if m else torch.zeros(0)
                         for m in self._means[b])
            cols.append((high - low).numpy())
        if len({len(c) for c in cols}) != 1:
            raise RuntimeError('Elastic blocks saw different numbers of '
                               'images; was a forward interrupted?')
        return np.stack(cols, axis=1).astype(np.float64)


@torch.no_grad()
def compute_scale_policy(model, dataloader, max_images=None):
    """Run ``model``'s backbone over ``dataloader`` (mmdet / mmseg batches).

    Returns a dict with ``scores`` ((N, B) array), ``blocks`` (B names) and
    ``images`` (N image paths, or indices when the data has none).
    """
    if max_images is not None and (isinstance(max_images, bool) or not
                                   isinstance(max_images, int) or
                                   max_images < 1):
        raise ValueError(f'max_images={max_images!r}; allowed: None or an '
                         'integer >= 1.')
    backbone = getattr(model, 'backbone', model)
    model.eval()
    images = []
    with ScalePolicyRecorder(backbone) as rec:
        for data in dataloader:
            data = model.data_preprocessor(data, False)
            backbone(data['inputs'])
            ids = range(len(images), len(images) + len(data['inputs']))
            samples = data.get('data_samples') or [None] * len(ids)
            images += [str(s.metainfo.get('img_path', i) if s else i)
                       for i, s in zip(ids, samples)]
            if max_images is not None and len(images) >= max_images:
                break
    return {'scores': rec.scores()[:max_images], 'blocks': rec.names,
            'images': images[:max_images]}


def save_scale_policy(result, out_dir):
    """Write ``scores.csv`` / ``scores.npy`` (image x block),
    ``block_mean.csv`` and ``summary.json`` (per-block mean and std), and
    ``heatmap.png`` (images sorted by their mean S, as in fig. 6 middle).
    Returns the paths."""
    scores, blocks, images = (result['scores'], result['blocks'],
                              result['images'])
    if scores.ndim != 2 or scores.shape != (len(images), len(blocks)) \
            or not len(images):
        raise ValueError(f'scores of shape {scores.shape} do not match '
                         f'{len(images)} images x {len(blocks)} blocks.')
    paths = {k: os.path.join(out_dir, v) for k, v in (
        ('csv', 'scores.csv'), ('npy', 'scores.npy'),
        ('block_mean', 'block_mean.csv'), ('summary', 'summary.json'),
        ('heatmap', 'heatmap.png'))}
    with atomic_open(paths['npy'], 'wb') as f:
        np.save(f, scores)
    with atomic_open(paths['csv']) as f:
        writer = csv.writer(f)
        writer.writerow(['image', *blocks, 'mean'])
        for img, row in zip(images, scores):
            writer.writerow([img, *(repr(float(v)) for v in row),
                             repr(float(row.mean()))])
    mean, std = scores.mean(axis=0), scores.std(axis=0)
    with atomic_open(paths['block_mean']) as f:
        writer = csv.writer(f)
        writer.writerow(['block', 'mean', 'std'])
        for row in zip(blocks, mean, std):
            writer.writerow([row[0], repr(float(row[1])),
                             repr(float(row[2]))])
    order = np.argsort(-scores.mean(axis=1), kind='stable')
    dump_json({'blocks': blocks, 'num_images': len(images),
               'block_mean': mean.tolist(), 'block_std': std.tolist(),
               'images_by_mean_score': [images[i] for i in order]},
              paths['summary'], indent=2)
    _heatmap(scores[order], blocks, paths['heatmap'])
    return paths


def _heatmap(sorted_scores, blocks, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n, b = sorted_scores.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * b + 2), 4.5))
    lim = float(np.abs(sorted_scores).max()) or 1.0
    im = ax.imshow(sorted_scores, aspect='auto', cmap='RdBu_r',
                   vmin=-lim, vmax=lim, interpolation='nearest')
    ax.set_xticks(range(b))
    ax.set_xticklabels(blocks, rotation=90, fontsize=6)
    ax.set_xlabel('Elastic block')
    ax.set_ylabel(f'image (n={n}, sorted by mean S)')
    fig.colorbar(im, ax=ax, label='S = mean(high) - mean(low)')
    fig.tight_layout()
    with atomic_open(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=100)
    plt.close(fig)
