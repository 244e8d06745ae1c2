"""Data-driven neuron allocation for ScaleNet (paper 3.2, eq. 5-6, alg. 1).

A trained seed network (``ScaleNet(structure=dict(seed=C))``) is projected
onto the FLOPs budget of each SA block: every output neuron ``n`` of block
``k`` is scored ``p_kn = |gamma_kn| / O_kl**b``, with ``gamma`` its BN scale
weight (``norm2``, after the upsample), ``O_kl`` the multiply-adds of one
output neuron of its scale at the design resolution and ``b`` the balance
exponent (0 in the paper); the block keeps its best neurons within its
budget ``O_k``. The result is a new structure, to be retrained from scratch.
"""
from typing import List, Sequence

import torch

from .scalenet_structure import structure_file


def select_neurons(gammas: Sequence[torch.Tensor], costs: Sequence[int],
                   budget: float, balance: float = 0.0) -> List[List[int]]:
    """Greedy solution of eq. 6 for one block.

    Neurons are visited by decreasing score ``|gamma| / cost**balance`` (ties
    in scale, then channel order); each is kept if its cost still fits in
    what is left of ``budget``. Choice: a neuron that does not fit is
    skipped, not the end of the selection, so cheaper neurons further down
    can still use the budget. Within one scale (equal costs) the kept
    neurons are therefore always that scale's largest ``|gamma|``.

    Args:
        gammas: per scale, the BN scale weights of its output neurons (empty
            for an absent scale).
        costs: per scale, the multiply-adds ``O_kl`` of one neuron.
        budget: ``O_k``, multiply-adds the kept neurons may use together.
        balance: the exponent ``b``.

    Returns:
        Per scale, the sorted indices of the kept neurons.
    """
    owner = torch.cat([torch.full((len(g), ), i, dtype=torch.long)
                       for i, g in enumerate(gammas)])
    index = torch.cat([torch.arange(len(g)) for g in gammas])
    cost = torch.tensor([float(c) for c in costs], dtype=torch.float64)
    score = torch.cat([g.detach().abs().double().flatten()
                       for g in gammas]) / cost[owner]**balance
    kept = [[] for _ in gammas]
    left = float(budget)
    for n in torch.argsort(-score, stable=True).tolist():
        scale = int(owner[n])
        if costs[scale] <= left:
            left -= costs[scale]
            kept[scale].append(int(index[n]))
    return [sorted(k) for k in kept]


def block_budget(block, ratio: float = 1.0) -> float:
    """``O_k``: ``ratio`` times the multiply-adds of the ResNet 3x3 conv the
    SA block replaces (``planes -> planes`` at the block's design side),
    the paper's budget (3.3) for ``ratio=1``."""
    sa = block.conv2
    return ratio * 9 * sa.in_channels**2 * sa.design_size**2


def allocate_neurons(backbone, budget: float = 1.0, balance: float = 0.0):
    """Allocate the neurons of every SA block of a trained ``ScaleNet``.

    Args:
        backbone (ScaleNet): the trained seed network (all four stages).
        budget (float): each block's budget as a multiple of its ResNet 3x3
            conv's multiply-adds (1.0: the paper's ScaleNets; less gives a
            lighter network).
        balance (float): ``b`` of eq. 6; ``> 0`` favours cheap (coarse)
            scales.

    Returns:
        dict: a structure file's content (``blocks``, ``layers``,
        ``scales``), plus ``allocation``: the arguments and, per block, the
        kept multiply-adds and the budget. ``ScaleNet(structure=...)``
        builds it directly.
    """
    name = type(backbone).__name__
    if not hasattr(backbone, 'structure') or not hasattr(backbone, 'scales'):
        raise TypeError(f'allocate_neurons: needs a ScaleNet backbone, got '
                        f'{name}.')
    stage_blocks = backbone.arch_settings[backbone.depth][1]
    if len(backbone.res_layers) != len(stage_blocks):
        raise ValueError(f'allocate_neurons: the backbone has '
                         f'{len(backbone.res_layers)} stages; the allocation '
                         f'covers all {len(stage_blocks)}.')
    if not budget > 0:
        raise ValueError(f'allocate_neurons: budget={budget!r}; allowed > 0 '
                         '(a multiple of the ResNet 3x3 conv FLOPs).')
    blocks, flops, budgets = [], [], []
    for layer_name in backbone.res_layers:
        for j, block in enumerate(getattr(backbone, layer_name)):
            where = f'allocate_neurons: {layer_name}.{j}'
            sa, gamma = block.conv2, block.norm2.weight
            if gamma is None:
                raise ValueError(f'{where}: norm2 has no scale weight '
                                 '(gamma); the allocation needs an affine '
                                 'norm layer.')
            gammas = list(torch.split(gamma.detach(), sa.branch_channels))
            costs = sa.neuron_flops()
            o_k = block_budget(block, budget)
            kept = select_neurons(gammas, costs, o_k, balance)
            counts = [len(k) for k in kept]
            if not any(counts):
                raise ValueError(
                    f'{where}: budget {o_k:.0f} multiply-adds keeps no '
                    f'neuron (cheapest costs {min(costs)}); raise --budget.')
            blocks.append(counts + [sa.design_size])
            flops.append(sum(c * o for c, o in zip(counts, costs)))
            budgets.append(o_k)
    return structure_file(
        blocks, stage_blocks, backbone.scales,
        allocation=dict(budget=budget, balance=balance, block_flops=flops,
                        block_budgets=budgets))
