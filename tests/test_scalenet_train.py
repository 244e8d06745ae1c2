"""ScaleNet's neuron allocation end to end on the embedded dataset: train a
seed network, run tools/allocate_neurons.py, retrain and evaluate the
allocated network (paper 3.2, algorithm 1)."""
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.analysis import FlopAnalyzer

from msdet.datasets.synthetic_coco import make_coco_dataset
from msdet.models.backbones import ScaleNet
from conftest import load_tool, working_dir

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEED_CFG = osp.join(
    REPO, 'configs/scalenet/demo/faster_rcnn_scalenet50_seed_demo.py')
ONE_ITER = ['train_cfg.max_epochs=1', 'train_dataloader.batch_size=2',
            'default_hooks.checkpoint.interval=1', 'randomness.seed=0']


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    """Two train / two val images at ./data/coco_demo (one iteration of 2)."""
    root = tmp_path_factory.mktemp('scalenet_alloc')
    make_coco_dataset(root / 'data/coco_demo', num_train=2, num_val=2)
    with working_dir(root):
        yield root


@pytest.fixture(scope='module')
def allocated(workdir):
    """Seed trained one iteration (no validation), then allocated."""
    load_tool('train').main([SEED_CFG, '--work-dir', 'seed', '--cfg-options',
                             'train_cfg.val_begin=2', *ONE_ITER])
    ckpt = workdir / 'seed/epoch_1.pth'
    out = workdir / 'alloc/structure.json'
    returned = load_tool('allocate_neurons').main(
        [SEED_CFG, str(ckpt), '--out', str(out)])
    return ckpt, json.loads(out.read_text()), returned


def greedy(gammas, costs, budget):
    """Eq. 6 by the book: visit neurons by decreasing |gamma|, keep what
    fits; counts per scale."""
    order = sorted(((-abs(g), l, n) for l, gs in enumerate(gammas)
                    for n, g in enumerate(gs)))
    counts, left = [0] * len(gammas), budget
    for _, l, _ in order:
        if costs[l] <= left:
            counts[l] += 1
            left -= costs[l]
    return counts


def test_allocation_follows_gamma_within_budgets(allocated):
    ckpt, structure, returned = allocated
    assert structure['blocks'] == returned['blocks']
    state = torch.load(ckpt, map_location='cpu')['state_dict']
    new = ScaleNet(depth=50, base_channels=16, structure=structure)
    new.eval()
    names = [f'{layer}.{j}' for layer in new.res_layers
             for j in range(len(getattr(new, layer)))]
    assert len(names) == len(structure['blocks']) == 16
    for name, entry in zip(names, structure['blocks']):
        blk = new.get_submodule(name)
        gamma = state[f'backbone.{name}.bn2.weight']
        planes, side = blk.conv2.in_channels, entry[-1]
        seed_c = gamma.numel() // 4
        assert seed_c == planes  # the demo seed: planes neurons per scale
        costs = [(1 if side <= s else 9) * planes * max(side // s, 1)**2
                 for s in (1, 2, 4, 7)]
        budget = 9 * planes * planes * side * side  # the ResNet 3x3 conv
        assert entry[:-1] == greedy(gamma.split(seed_c), costs, budget)
        fa = FlopAnalyzer(blk.conv2, (torch.randn(1, planes, side, side), ))
        fa.tracer_warnings('none')
        assert fa.by_operator()['conv'] <= budget


def test_allocated_network_trains_and_evaluates(allocated, workdir):
    _, structure, _ = allocated
    runner = load_tool('train').main([
        SEED_CFG, '--work-dir', 'retrain', '--cfg-options',
        'model.backbone.structure=alloc/structure.json', *ONE_ITER
    ])
    assert isinstance(runner.model.backbone, ScaleNet)
    assert runner.model.backbone.structure == structure['blocks']
    saved = torch.load(workdir / 'retrain/epoch_1.pth', map_location='cpu')
    widths = [saved['state_dict'][f'backbone.layer{i + 1}.{j}.bn2.weight']
              .numel() for i, n in enumerate((3, 4, 6, 3))
              for j in range(n)]
    assert widths == [sum(b[:-1]) for b in structure['blocks']]
    # every parameter took the one optimizer step, with a finite loss
    steps = [float(s['step']) for s in saved['optimizer']['state'].values()]
    assert steps and all(s == 1 for s in steps)
    loss = saved['message_hub']['log_scalars']['train/loss'].current()
    assert math.isfinite(loss) and loss > 0
    metrics = runner.message_hub.log_scalars
    for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75'):
        assert 0 <= metrics[f'val/coco/{key}'].current() <= 1
    for size in 'sml':  # -1: no object of that size in the 2 val images
        assert -1 <= metrics[f'val/coco/bbox_mAP_{size}'].current() <= 1
