"""A test loop that evaluates one model at several test scales (and widths)."""
import copy
import time

import torch
from mmengine.model import is_model_wrapper
from mmengine.registry import LOOPS
from mmengine.runner import TestLoop, autocast

from .complexity import backbone_gflops, model_gflops

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


@LOOPS.register_module()
class ScaleSweepTestLoop(TestLoop):
    """Test once per (width, test scale) setting; one pass each.

    For every setting the test pipeline's ``Resize`` scale becomes the short
    side ``s`` with the long side scaled in proportion to the config's own
    test scale (``(1333, 800)`` at ``s=600`` gives ``(1000, 600)``), the
    dataloader is rebuilt (so worker processes see it) and the evaluator runs
    as in mmengine's ``TestLoop``. Each setting also records the per-image
    latency of ``model.test_step`` and the backbone's and the whole model's
    GFLOPs on the first test image at that setting. Results:
    ``self.records`` (one dict per setting) and the returned metrics, keyed
    ``w{width}_s{short}/<metric>`` (``s{short}/<metric>`` without widths).

    Args:
        scales (Sequence[int]): test short sides. Default 240 ... 800.
        widths (Sequence[float], optional): sub-network widths for models
            that can switch width (``msdet.ops.subnet_space``).
        count_flops (bool): measure GFLOPs per setting. Default True.
    """

    def __init__(self, runner, dataloader, evaluator, scales=DEFAULT_SCALES,
                 widths=None, count_flops=True, fp16=False):
        self.scales = check_scales(scales)
        if not isinstance(dataloader, dict):
            raise TypeError('ScaleSweepTestLoop rebuilds the dataloader per '
                            'scale: give it as a config dict.')
        self._loader_cfg = copy.deepcopy(dataloader)
        base = find_resize(self._loader_cfg['dataset']['pipeline'])['scale']
        self._base_scale = tuple(base)
        self.widths = self._check_widths(runner.model, widths)
        self.count_flops = count_flops
        super().__init__(runner, dataloader, evaluator, fp16)
        self.records = []

    @staticmethod
    def _check_widths(model, widths):
        if widths is None:
            return None
        from msdet.ops import subnet_space
        space = subnet_space(model).get('width')
        if space is None:
            raise ValueError(f'widths {list(widths)!r} asked for, but this '
                             'model cannot switch width.')
        lo, hi = space
        bad = [w for w in widths if not lo <= w <= hi]
        if not widths or bad:
            raise ValueError(f'widths {list(widths)!r}: each must lie in the '
                             f"model's range [{lo}, {hi}].")
        return [float(w) for w in widths]

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
        core = model.module if is_model_wrapper(model) else model
        metrics, self.records = {}, []
        for width in self.widths or [None]:
            if width is not None:
                from msdet.ops import set_subnet
                set_subnet(model, width=width)
            for short in self.scales:
                self.dataloader = self._build_loader(short)
                record = dict(width=width, short_side=short,
                              scale=list(self.test_scale(short)))
                record.update(self._run_setting(core))
                self.records.append(record)
                tag = (f's{short}' if width is None else
                       f'w{width:g}_s{short}')
                metrics.update({f'{tag}/{k}': v
                                for k, v in record['metrics'].items()})
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    def _run_setting(self, core):
        self._model_time, out = 0.0, {}
        for idx, data_batch in enumerate(self.dataloader):
            if idx == 0 and self.count_flops:
                out.update(self._gflops(core, data_batch))
            self.run_iter(idx, data_batch)
        n = len(self.dataloader.dataset)
        out['metrics'] = self.evaluator.evaluate(n)
        out['latency_ms'] = 1000 * self._model_time / n
        return out

    @torch.no_grad()
    def _gflops(self, core, data_batch):
        data = core.data_preprocessor(data_batch, False)
        inputs, samples = data['inputs'][:1], data['data_samples'][:1]
        return dict(
            input_shape=list(inputs.shape[-2:]),
            gflops_backbone=backbone_gflops(core.backbone, inputs),
            gflops_model=model_gflops(core, inputs, samples))

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
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(
            'after_test_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()
