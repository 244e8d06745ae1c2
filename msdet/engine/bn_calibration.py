"""Post-statistics of batch normalization (US-Net; MutualNet section 3.1)."""
import math

import torch
from mmengine.dist import all_reduce, get_world_size
from torch.nn.modules.batchnorm import _BatchNorm

from msdet.ops.switchable import set_subnet, unwrap_model

from .rescale import rescale_batch


@torch.no_grad()
def recalibrate_bn(model, data_loader, num_images=2000, subnet=None,
                   scale=None, distributed=True):
    """Re-estimate BN statistics for one (sub-network, input scale).

    Sets ``subnet`` (e.g. ``dict(width=0.5)``) if given, then feeds
    ``num_images`` images of ``data_loader`` (training images, as in the
    paper; 2000 suffice, section 3.1), resized to ``scale = (long, short)``
    if given, through the model with the weights frozen. Every BN layer the
    forward reaches has its running statistics reset on first use and
    re-estimated as the cumulative average over the batches (momentum None);
    BN layers not reached (e.g. private BNs of other widths) keep theirs.
    Frozen BN layers keep theirs too, as training keeps them: those the
    model's own ``train()`` leaves in eval mode (``frozen_stages``, e.g. the
    frozen stem of the Resizable configs, and ``norm_eval``) and those whose
    affine parameters all have ``requires_grad=False``.
    The model is left at ``subnet`` with its train/eval modes restored.

    ``data_loader`` yields batches as the runner's dataloaders do; the model
    runs its data preprocessor and ``mode='tensor'`` forward. Under DDP every
    rank uses ``ceil(num_images / world_size)`` images of its own shard and
    the statistics are averaged over ranks; with ``distributed=False`` this
    process alone uses ``num_images`` of ``data_loader`` and communicates
    nothing (e.g. rank 0 computing what one process would, to broadcast).
    Returns the number of images used (on this rank); fewer than asked if
    the loader runs out.
    """
    if not (isinstance(num_images, int) and num_images >= 1):
        raise ValueError(f'recalibrate_bn: num_images={num_images!r}; '
                         'allowed: an int >= 1.')
    core = unwrap_model(model)
    if subnet:
        set_subnet(core, **subnet)
    world_size = get_world_size() if distributed else 1
    quota = math.ceil(num_images / world_size)
    momenta, handles = {}, []

    def reset_on_first_use(bn, args):
        if bn not in momenta:
            momenta[bn] = bn.momentum
            bn.reset_running_stats()
            bn.momentum = None

    modes = [(m, m.training) for m in core.modules()]
    seen = 0
    try:
        core.train()  # the model's own freezing puts frozen BNs in eval mode
        bns = [m for m in core.modules() if isinstance(m, _BatchNorm)
               and m.track_running_stats and not _frozen(m)]
        core.eval()
        for bn in bns:
            bn.train()
            handles.append(bn.register_forward_pre_hook(reset_on_first_use))
        for data in data_loader:
            take = min(len(data['inputs']), quota - seen)
            data = {k: v[:take] if isinstance(v, (list, tuple, torch.Tensor))
                    else v for k, v in data.items()}
            if scale is not None:
                data = rescale_batch(data, scale)
            core(**core.data_preprocessor(data, False), mode='tensor')
            seen += take
            if seen >= quota:
                break
    finally:
        for handle in handles:
            handle.remove()
        for bn, momentum in momenta.items():
            bn.momentum = momentum
        for m, training in modes:
            m.training = training
    if world_size > 1:
        for bn in bns:
            if bn in momenta:
                all_reduce(bn.running_mean, op='mean')
                all_reduce(bn.running_var, op='mean')
    return seen


def _frozen(bn) -> bool:
    """In eval mode while the model trains, or no trainable affine."""
    params = list(bn.parameters(recurse=False))
    return not bn.training or bool(params) and not any(
        p.requires_grad for p in params)
