"""Fair sampling of spatial configurations and scheduled switching
(Resizable paper, section 3.2 "Fair Sampling", algorithm 1; section 3.4
"Scheduled Switching"), as a ``SubnetSwitchHook`` sampler.

    custom_hooks = [dict(
        type='SubnetSwitchHook', calib_images=0,
        sampler=dict(type='FairSpatialSampler',
                     switch_at=dict(epoch=8)))]   # None: never (RS-NAS)

Every iteration runs ``len(L)`` sub-networks on the same mini-batch
(algorithm 1's inner loop; the hook accumulates their gradients and steps
once). The factor of stage ``i`` for the ``j``-th sub-network is the
``j``-th entry of a random permutation of that stage's list, drawn
independently per stage: within one iteration no (stage, factor) pair is
picked twice until every factor of that stage has been used (non-repetitive
fair sampling; appendix A.1: "uniformly taken from a predefined list ...
except when it contradicted to fair sampling rule"). With ``len(L)``
sub-networks every (stage, factor) pair trains exactly once per iteration;
with lists of different lengths per stage the shorter ones start a new
permutation when used up. The permutations come from the hook's
``iteration_rng(seed, iteration)``: the same on every DDP rank and on
resume.

Scheduled switching (3.4, Resizable-Aug): from iteration ``switch_at.iter``
(or epoch ``switch_at.epoch``) on, only the target configuration trains
(one sub-network per iteration, named ``target``), as in normal training.
``switch_at=dict(iter=0)`` trains only the target from the start: the
Resizable-NAS fine-tune of a chosen sub-network (3.3).

The sub-network left in place between iterations, validated and
BN-recalibrated with (``default()``), is the target configuration
(default: the largest factor of every stage, i.e. the plain ResNet).
No input rescaling (``scale=None``): spatial configurations change the
feature maps, not the images.
"""
from mmengine.registry import TASK_UTILS

from msdet.ops.feature_resize import check_factors
from msdet.ops.switchable import is_allowed
from msdet.utils.validation import check_int, is_int

from .samplers import Subnet


def _stage(key):
    return int(key[len('resize'):])


@TASK_UTILS.register_module()
class FairSpatialSampler:
    """Algorithm 1's fair sampler with scheduled switching (module doc).

    Args:
        factors (dict, optional): ``{'resize1': [..], ...}`` to sample from
            a subset of the model's factor lists (each a subset of the
            model's). Default None: every stage's full list.
        num_subnets (int, optional): sub-networks per iteration. Default
            None: ``len(L)``, the longest factor list (algorithm 1).
        target (dict, optional): the target configuration, e.g.
            ``dict(resize1=0.75, resize2=0.875)`` (stages not given: their
            largest factor). Default: the largest factor everywhere.
        switch_at (dict, optional): ``dict(iter=N)`` or ``dict(epoch=E)``:
            from then on only the target trains (3.4). Default None: never.
    """

    def __init__(self, factors=None, num_subnets=None, target=None,
                 switch_at=None):
        name = type(self).__name__
        if factors is not None:
            if not isinstance(factors, dict) or not factors or any(
                    not str(k).startswith('resize') for k in factors):
                raise ValueError(f'{name}: factors={factors!r}; allowed: '
                                 "None or {'resize1': [...], ...}.")
            factors = {k: check_factors(v, f'{name} {k}')
                       for k, v in factors.items()}
        if num_subnets is not None:
            check_int(name, 'num_subnets', num_subnets, 1,
                      allowed='None (len(L)) or an int >= 1')
        if target is not None and not isinstance(target, dict):
            raise ValueError(f'{name}: target={target!r}; allowed: None or '
                             "a dict like {'resize1': 0.75}.")
        if switch_at is not None:
            ok = (isinstance(switch_at, dict) and len(switch_at) == 1
                  and next(iter(switch_at)) in ('iter', 'epoch'))
            value = next(iter(switch_at.values())) if ok else None
            if not ok or not is_int(value) or value < 0:
                raise ValueError(f'{name}: switch_at={switch_at!r}; allowed:'
                                 ' None, dict(iter=N) or dict(epoch=E) with '
                                 'an int >= 0.')
        self.factors, self.num_subnets = factors, num_subnets
        self.target, self.switch_at = dict(target or {}), switch_at
        self._lists = None
        self._target = None

    def bind(self, space):
        name = type(self).__name__
        model_keys = sorted((k for k in space if k.startswith('resize')),
                            key=_stage)
        if not model_keys:
            raise ValueError(f'{name}: the model has no resize factors '
                             f'(subnet_space: {space}); use a resizable '
                             'backbone such as ResizableResNet.')
        lists = {}
        for key in model_keys:
            allowed = space[key]
            mine = (self.factors or {}).get(key, allowed)
            bad = [f for f in mine if not is_allowed(f, allowed)]
            if bad:
                raise ValueError(f'{name}: factors {bad} of {key} are not '
                                 f"in the model's list {allowed}.")
            lists[key] = list(mine)
        unknown = set(self.factors or {}) - set(model_keys)
        unknown |= set(self.target) - set(model_keys)
        if unknown:
            raise ValueError(f'{name}: {sorted(unknown)} are not settings '
                             f'of the model; it has {model_keys}.')
        target = {k: max(space[k]) for k in model_keys}
        for key, value in self.target.items():
            if not is_allowed(value, space[key]):
                raise ValueError(f'{name}: target {key}={value!r}; allowed: '
                                 f'one of {space[key]}.')
            target[key] = value
        self._lists, self._target = lists, target

    def _check_bound(self):
        if self._lists is None:
            raise RuntimeError(f'{type(self).__name__}: call bind(space) '
                               'first (the hook does, before training).')

    def default(self):
        self._check_bound()
        return Subnet('target', dict(self._target), None)

    def switched(self, iteration, epoch):
        """Whether scheduled switching (3.4) has happened."""
        if self.switch_at is None:
            return False
        (unit, at), = self.switch_at.items()
        return (iteration if unit == 'iter' else epoch) >= at

    def sample(self, rng, iteration, epoch):
        self._check_bound()
        if self.switched(iteration, epoch):
            return [self.default()]
        n = self.num_subnets or max(len(v) for v in self._lists.values())
        columns = {}
        for key, values in self._lists.items():  # fixed order: by stage
            order = []
            while len(order) < n:
                order += [values[k] for k in rng.permutation(len(values))]
            columns[key] = order[:n]
        return [Subnet(f'fair{j + 1}',
                       {k: float(v[j]) for k, v in columns.items()}, None)
                for j in range(n)]
