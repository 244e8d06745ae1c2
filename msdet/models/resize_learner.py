"""The ResizeLearner of adaptive resizable networks (Resizable paper,
section 3.5, Resizable-Adapt; results in 4.4, fig. 3d).

"It is composed of three convolutional layers along with a pooling layer
and followed by the softmax, attached at the last stage of the original
network": a small classifier over a list of *candidate* spatial
configurations of a trained, frozen Resizable super-network. Trained on
targets that name, for every training sample, the candidate that did best
on it; at inference each sample goes to the candidate it predicts
(``msdet.models.detectors.ResizableAdaptDetector``).

Layers (widths, kernels and strides are not in the paper; chosen here so
the learner costs a few percent of a ResNet-50 backbone even on the stem's
large map): conv 3x3 stride 2 (``in_channels`` -> ``feat_channels``) +
ReLU, conv 3x3 stride 2 (``feat_channels`` -> ``feat_channels``) + ReLU,
conv 1x1 (``feat_channels`` -> one logit per candidate), global average
pooling, softmax. No normalisation layers (the paper names none): the
learner then works for any batch size, also one image whose last-stage map
is 1x1.

Where it reads (``in_stage``):

- ``'last'`` (default, the paper's "attached at the last stage"): the
  output of the super-network's last stage, computed by one pass of the
  backbone at the *probe* configuration, every stage at its smallest
  factor (the cheapest sub-network; the paper does not say at which
  configuration its learner reads). Default because it is the paper's
  design and sees the most semantic features; for detection the probe is
  an extra backbone pass (counted in the FLOPs the detector reports).
- ``'stem'``: the stem's output (conv1 + max-pool), before the first
  resize, i.e. the same for every sub-network: the choice is made before
  any resizable stage runs and costs only the stem and the learner's
  convs, but rests on low-level features. Offered because a detector must
  choose before it runs its expensive stages.

The candidate list, the stage read and the probe configuration are saved
with the learner's weights (buffers ``candidates`` and ``probe_factors``);
loading a learner into a model with another list (or stage, or probe)
fails with one clear error instead of silently routing images to the wrong
sub-networks.
"""
import math

import torch
import torch.nn as nn
from mmengine.registry import MODELS

IN_STAGES = ('last', 'stem')


def check_configuration_list(configurations, name):
    """A non-empty list of distinct configurations, each a dict
    ``{'resize1': s1, ...}`` with the same keys, else one clear error.
    Returned as plain dicts of floats, in the given order."""
    example = "[dict(resize1=0.5, resize2=1.0, resize3=1.0, resize4=1.0)]"
    try:
        items = [dict(c) for c in configurations]
        out = [{str(k): float(v) for k, v in c.items()} for c in items]
    except (TypeError, ValueError):
        raise ValueError(f'{name}: configurations={configurations!r}; '
                         f'allowed: a list of dicts like {example}.') from None
    if not out or any(not c for c in out) or any(
            set(c) != set(out[0]) for c in out):
        raise ValueError(f'{name}: configurations={configurations!r}; '
                         'allowed: a non-empty list of dicts with the same '
                         f'keys, e.g. {example}.')
    for i, c in enumerate(out):
        if any(same_configuration(c, d) for d in out[:i]):
            raise ValueError(f'{name}: configuration {c} is listed twice; '
                             'candidates must be distinct.')
    return out


def same_configuration(a, b):
    """Whether two configurations have the same keys and factors."""
    return set(a) == set(b) and all(
        math.isclose(float(a[k]), float(b[k]), rel_tol=1e-9, abs_tol=1e-12)
        for k in a)


def same_configuration_list(a, b):
    return len(a) == len(b) and all(
        same_configuration(x, y) for x, y in zip(a, b))


@MODELS.register_module()
class ResizeLearner(nn.Module):
    """Three convs, global pooling and a softmax over ``configurations``
    (paper 3.5; module docstring for the layers and ``in_stage``).

    ``forward(x)`` returns the softmax probabilities ``(N, K)`` over the K
    candidates; ``logits(x)`` the scores before it (for the cross-entropy
    against each sample's best candidate).

    Args:
        configurations (list[dict]): the K candidate spatial
            configurations, e.g. ``[dict(resize1=0.5, resize2=1.0, ...),
            ...]``; output ``k`` is ``configurations[k]``.
        in_channels (int): channels of the feature map read.
        in_stage (str): ``'last'`` (default, paper 3.5) or ``'stem'``.
        feat_channels (int): width of the two 3x3 convs. Default 128.
        probe (dict, optional): the configuration the backbone runs at to
            produce the input when ``in_stage='last'``; set by the
            detector wrapper (smallest factor of every stage).
    """

    def __init__(self, configurations, in_channels, in_stage='last',
                 feat_channels=128, probe=None):
        super().__init__()
        name = type(self).__name__
        self.configurations = check_configuration_list(configurations, name)
        if in_stage not in IN_STAGES:
            raise ValueError(f'{name}: in_stage={in_stage!r}; allowed: '
                             f"{' or '.join(map(repr, IN_STAGES))}.")
        for key, value in (('in_channels', in_channels),
                           ('feat_channels', feat_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value < 1:
                raise ValueError(f'{name}: {key}={value!r}; allowed: an int '
                                 '>= 1.')
        self.in_stage = in_stage
        self.in_channels = in_channels
        self.probe = None if probe is None else {
            str(k): float(v) for k, v in dict(probe).items()}
        c = feat_channels
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, len(self.configurations), 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        # what the weights are trained for, saved with them (checked on
        # load): one row of factors per candidate, and the probe's factors
        # (zeros: the learner reads the stem)
        self._keys = sorted(self.configurations[0],
                            key=lambda k: (len(k), k))  # resize2 < resize10
        self.register_buffer('candidates', torch.tensor(
            [[c[k] for k in self._keys] for c in self.configurations],
            dtype=torch.float64))
        self.register_buffer('probe_factors', torch.tensor(
            [self.probe[k] if self.probe else 0.0 for k in self._keys],
            dtype=torch.float64))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax scores ``(N, K)`` of the feature map ``x``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__}: input of shape '
                             f'{tuple(x.shape)}; expects (N, '
                             f'{self.in_channels}, H, W).')
        return self.pool(self.convs(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax over the candidates, ``(N, K)``, rows summing to 1."""
        return self.logits(x).softmax(dim=1)

    # --- what the weights were trained for ---------------------------------

    def _mismatch(self, candidates, probe):
        """What the buffers ``candidates`` / ``probe`` of a checkpoint say
        that differs from this learner's, as text (empty: nothing)."""
        keys = self._keys

        def where(p):
            return ('reading the stem' if not p.any() else 'reading the '
                    f'last stage probed at {dict(zip(keys, p.tolist()))}')

        out = []
        if candidates.shape != self.candidates.shape or not torch.equal(
                candidates.double().cpu(), self.candidates.double().cpu()):
            theirs = ([dict(zip(keys, row)) for row in candidates.tolist()]
                      if candidates.dim() == 2 and
                      candidates.shape[1] == len(keys) else
                      candidates.tolist())
            out.append(f'trained for candidates {theirs}; this model lists '
                       f'{self.configurations}')
        if probe.shape != self.probe_factors.shape or not torch.equal(
                probe.double().cpu(), self.probe_factors.double().cpu()):
            out.append(f'trained {where(probe)}; this model is '
                       f'{where(self.probe_factors)}')
        return '; '.join(out)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        theirs = [state_dict.get(prefix + k)
                  for k in ('candidates', 'probe_factors')]
        mismatch = None if any(t is None for t in theirs) else \
            self._mismatch(*theirs)
        if mismatch:
            raise ValueError(
                f"{type(self).__name__}: the checkpoint's learner was "
                f'{mismatch}. Train a learner for this model '
                '(tools/analysis/resizable_adapt_targets.py writes its '
                'config) or use the config it was trained with.')
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self):
        return (f'in_stage={self.in_stage!r}, candidates='
                f'{len(self.configurations)}, probe={self.probe}')
