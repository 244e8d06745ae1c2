"""A test loop that evaluates one model at several test scales (and widths)."""
import copy
import time

import torch
from mmengine.dist import all_reduce, broadcast, get_rank, get_world_size
from mmengine.registry import LOOPS
from mmengine.runner import TestLoop, autocast

from ..engine.bn_calibration import recalibrate_bn
from ..ops.switchable import is_allowed, set_subnet, subnet_space, unwrap_model
from .complexity import backbone_gflops, model_gflops
from .scale_report import subnet_name

DEFAULT_SCALES = (240, 360, 480, 600, 800)


def check_scales(scales):
    """Test scales are short sides in pixels: a non-empty list of ints > 0."""
    scales = list(scales) if scales is not None else []
    bad = [s for s in scales if isinstance(s, bool) or not isinstance(
        s, (int, float)) or s <= 0 or s != int(s)]
    if not scales or bad:
        raise ValueError(f'test scales {scales!r}: need a non-empty list of '
                         'positive integers (short side in pixels).')
    return [int(s) for s in scales]


def find_resize(pipeline):
    """The test pipeline's single ``Resize`` transform config (with scale)."""
    resizes = [t for t in pipeline if str(t.get('type', '')).split('.')[-1]
               == 'Resize']
    if len(resizes) != 1 or 'scale' not in resizes[0]:
        raise ValueError('a scale sweep needs exactly one Resize with a '
                         f"'scale' in the test pipeline, got {resizes!r}.")
    return resizes[0]


def use_scale_sweep(cfg, **loop_args):
    """Make ``cfg`` test with ``ScaleSweepTestLoop(**loop_args)`` and
    ``ScaleAwareCocoMetric`` in place of mmdet's ``CocoMetric`` (the same
    numbers plus the resized buckets). Returns ``cfg``."""
    cfg.test_cfg = dict(type='ScaleSweepTestLoop', **loop_args)
    evaluator = cfg.test_evaluator
    for metric in (evaluator if isinstance(evaluator, list) else [evaluator]):
        if metric.type.split('.')[-1] == 'CocoMetric':
            metric.type = 'ScaleAwareCocoMetric'
    return cfg


@LOOPS.register_module()
class ScaleSweepTestLoop(TestLoop):
    """Test once per (sub-network, test scale) setting; one pass each.

    For every setting the test pipeline's ``Resize`` scale becomes the short
    side ``s`` with the long side scaled in proportion to the config's own
    test scale (``(1333, 800)`` at ``s=600`` gives ``(1000, 600)``), the
    dataloader is rebuilt (so worker processes see it) and the evaluator runs
    as in mmengine's ``TestLoop``. Each setting also records the per-image
    latency of ``model.test_step`` and the backbone's and the whole model's
    GFLOPs on the first test image at that setting. Under DDP every rank
    tests its shard, the evaluator gathers all, latency is the mean over
    all ranks' images, and BN recalibration is what one process computes
    (rank 0 on the whole training loader, broadcast), so the numbers do not
    depend on the number of processes. Results:
    ``self.records`` (one dict per setting) and the returned metrics, keyed
    ``{setting}_s{short}/<metric>``, e.g. ``width0.5_s600/coco/bbox_mAP``.

    A model that routes every image to one of its sub-networks (e.g.
    ``ResizableAdaptDetector``: ``configurations``, ``routing_gflops``,
    each prediction's ``metainfo['subnet_choice']``) is counted at what it
    spends (its records are named ``adaptive``): ``choices`` records the
    fraction of images that went to each configuration, and the GFLOPs are
    the routing cost (``gflops_routing``) plus every configuration's GFLOPs
    (on the first test image) weighted by its fraction, i.e. the mean
    per-image GFLOPs.

    Args:
        scales (Sequence[int]): test short sides. Default 240 ... 800.
        widths (Sequence[float], optional): sub-network widths for models
            that can switch width; short for ``subnets=[dict(width=w)]``.
        subnets (Sequence[dict], optional): sub-network settings for
            ``msdet.ops.set_subnet`` (e.g. a Resizable ResNet's factors).
        recalibrate_bn (int): if > 0, re-estimate BN statistics on this many
            training images before each setting (MutualNet 3.1 post-
            statistics; ``msdet.engine.recalibrate_bn``). Default 0.
        count_flops (bool): measure GFLOPs per setting. Default True.
    """

    def __init__(self, runner, dataloader, evaluator, scales=DEFAULT_SCALES,
                 widths=None, subnets=None, recalibrate_bn=0,
                 count_flops=True, fp16=False):
        self.scales = check_scales(scales)
        if not isinstance(dataloader, dict):
            raise TypeError('ScaleSweepTestLoop rebuilds the dataloader per '
                            'scale: give it as a config dict.')
        self._loader_cfg = copy.deepcopy(dataloader)
        base = find_resize(self._loader_cfg['dataset']['pipeline'])['scale']
        self._base_scale = tuple(base)
        self.subnets = self._check_subnets(runner.model, widths, subnets)
        if not (isinstance(recalibrate_bn, int) and recalibrate_bn >= 0):
            raise ValueError(f'recalibrate_bn={recalibrate_bn!r}; allowed: '
                             'an int >= 0 (training images; 0 = off).')
        self.recalibrate_bn = recalibrate_bn
        self.count_flops = count_flops
        super().__init__(runner, dataloader, evaluator, fp16)
        self.records = []
        self._choices = None

    @staticmethod
    def _check_subnets(model, widths, subnets):
        if widths is not None and subnets is not None:
            raise ValueError('give widths or subnets, not both.')
        if widths is not None:
            if 'width' not in subnet_space(model):
                raise ValueError(f'widths {list(widths)!r} asked for, but '
                                 'this model cannot switch width.')
            subnets = [dict(width=float(w)) for w in widths]
        if subnets is None:
            return [None]
        space = subnet_space(model)
        if not subnets:
            raise ValueError('subnets is empty; give at least one setting.')
        for setting in subnets:
            for key, value in setting.items():
                if key not in space or not is_allowed(value, space[key]):
                    raise ValueError(
                        f'sub-network setting {key}={value!r} is not allowed '
                        f'by this model; it can switch: {space or "nothing"}.')
        return [dict(s) for s in subnets]

    def test_scale(self, short):
        """The Resize scale for short side ``short``."""
        ratio = short / min(self._base_scale)
        return tuple(int(round(v * ratio)) for v in self._base_scale)

    def _build_loader(self, short):
        cfg = copy.deepcopy(self._loader_cfg)
        find_resize(cfg['dataset']['pipeline'])['scale'] = \
            self.test_scale(short)
        return self.runner.build_dataloader(cfg, seed=self.runner.seed)

    def run(self):
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()
        model = self.runner.model
        core = unwrap_model(model)
        metrics, self.records = {}, []
        for subnet in self.subnets:
            if subnet is not None:
                set_subnet(model, **subnet)
            for short in self.scales:
                if self.recalibrate_bn:
                    self._recalibrate(core, subnet, short)
                    model.eval()
                self.dataloader = self._build_loader(short)
                record = dict(subnet=subnet, short_side=short,
                              scale=list(self.test_scale(short)))
                record.update(self._run_setting(core))
                self.records.append(record)
                tag = ''.join(f'{k}{v}_' for k, v in (subnet or {}).items())
                metrics.update({f'{tag}s{short}/{k}': v
                                for k, v in record['metrics'].items()})
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    def _recalibrate(self, core, subnet, short):
        """BN statistics for one setting; under DDP rank 0 computes them as
        one process would and every rank receives them."""
        if get_rank() == 0:
            recalibrate_bn(core, self._train_loader(), self.recalibrate_bn,
                           subnet, self.test_scale(short), distributed=False)
        if get_world_size() > 1:
            for buffer in core.buffers():
                broadcast(buffer, src=0)

    def _train_loader(self):
        """The training loader (as one process sees it, also under DDP)."""
        if not hasattr(self, '_calib_loader'):
            self._calib_loader = self.runner.build_dataloader(
                self.runner.cfg.train_dataloader, seed=self.runner.seed)
            sampler = getattr(self._calib_loader.batch_sampler, 'sampler',
                              self._calib_loader.sampler)
            _unshard(sampler)
        return self._calib_loader

    def _run_setting(self, core):
        self._model_time, self._images, out = 0.0, 0, {}
        routed = hasattr(core, 'routing_gflops')
        self._choices = (torch.zeros(len(core.configurations),
                                     dtype=torch.float64) if routed else None)
        for idx, data_batch in enumerate(self.dataloader):
            if idx == 0 and self.count_flops:
                out.update(self._gflops(core, data_batch))
            self.run_iter(idx, data_batch)
        out['metrics'] = self.evaluator.evaluate(len(self.dataloader.dataset))
        totals = torch.tensor([self._model_time, self._images],
                              dtype=torch.float64)
        all_reduce(totals)  # this rank's alone without DDP
        out['latency_ms'] = 1000 * totals[0].item() / totals[1].item()
        if routed:
            out.update(self._spent(core, out.pop('routing', None)))
        return out

    def _spent(self, core, costs):
        """Choice fractions and, with ``costs``, the mean GFLOPs spent."""
        counts = self._choices.clone()
        all_reduce(counts)
        fractions = (counts / counts.sum().clamp(min=1)).tolist()
        out = dict(name='adaptive', choices={
            subnet_name(c): f for c, f in zip(core.configurations,
                                              fractions)})
        if costs is not None:
            out['gflops_routing'] = costs['routing']
            for part in ('backbone', 'model'):
                out[f'gflops_{part}'] = costs['routing'] + sum(
                    f * c[part] for f, c in zip(fractions,
                                                costs['candidates']))
        return out

    @torch.no_grad()
    def _gflops(self, core, data_batch):
        data = core.data_preprocessor(data_batch, False)
        inputs, samples = data['inputs'][:1], data['data_samples'][:1]
        out = dict(input_shape=list(inputs.shape[-2:]))
        if self._choices is not None:
            out['routing'] = core.routing_gflops(inputs, samples)
        else:
            out.update(gflops_backbone=backbone_gflops(core.backbone, inputs),
                       gflops_model=model_gflops(core, inputs, samples))
        return out

    @torch.no_grad()
    def run_iter(self, idx, data_batch):
        self.runner.call_hook(
            'before_test_iter', batch_idx=idx, data_batch=data_batch)
        _sync()
        start = time.perf_counter()
        with autocast(enabled=self.fp16):
            outputs = self.runner.model.test_step(data_batch)
        _sync()
        self._model_time += time.perf_counter() - start
        self._images += len(data_batch['inputs'])
        if self._choices is not None:
            for sample in outputs:
                self._choices[sample.metainfo['subnet_choice']] += 1
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(
            'after_test_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)


def _unshard(sampler):
    """Make an mmengine ``DefaultSampler`` / ``InfiniteSampler`` under DDP
    yield every index, in one process's order, instead of this rank's
    shard."""
    if getattr(sampler, 'world_size', 1) == 1:
        return
    sampler.rank, sampler.world_size = 0, 1
    if hasattr(sampler, 'total_size'):  # DefaultSampler: its padded length
        sampler.num_samples = sampler.total_size = len(sampler.dataset)


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()
