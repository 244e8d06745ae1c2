"""One training iteration over several sub-networks (MutualNet 3.2, eq. 4)."""
from collections import OrderedDict
from contextlib import nullcontext

from msdet.ops.switchable import set_subnet, unwrap_model

from .rescale import rescale_batch


def multi_subnet_train_step(model, data, optim_wrapper, subnets):
    """Train ``subnets`` on the same mini-batch; one optimizer step.

    For every sub-network, in order: ``set_subnet(**settings)``, the batch
    resized to its input scale (``rescale_batch``), forward with the
    ground-truth losses (the paper's detection setting, 4.3: no inplace
    distillation) and backward, so gradients accumulate (eq. 4: the total
    loss is the sum over sub-networks, eq. 5). The optimizer (with its
    gradient clipping) then steps once. Under DDP all backward passes but the
    last run in ``no_sync``: one gradient all-reduce per iteration.

    ``model`` is the runner's model (possibly DDP-wrapped); ``data`` the
    dataloader's batch. Returns the log variables: the model's loss terms
    summed over sub-networks (other terms, e.g. accuracies, averaged),
    ``loss`` the total, and ``{name}_loss`` per sub-network.
    """
    core = unwrap_model(model)
    totals, log_vars = OrderedDict(), OrderedDict()
    for k, subnet in enumerate(subnets):
        set_subnet(core, **subnet.settings)
        batch = (data if subnet.scale is None else
                 rescale_batch(data, subnet.scale))
        last = k == len(subnets) - 1
        with (nullcontext() if last or not hasattr(model, 'no_sync') else
              model.no_sync()):
            with optim_wrapper.optim_context(model):
                batch = core.data_preprocessor(batch, True)
                losses = model(**batch, mode='loss')
            loss, sub_vars = core.parse_losses(losses)
            optim_wrapper.backward(loss)
        for key, value in sub_vars.items():
            totals[key] = totals.get(key, 0) + value.detach()
        log_vars[f'{subnet.name}_loss'] = loss.detach()
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    n = len(subnets)
    out = OrderedDict((key, value if 'loss' in key else value / n)
                      for key, value in totals.items())
    out.update(log_vars)
    return out
