"""torch.compile on msdet's models: every backbone design is captured as one
graph (no graph break) and computes eager's outputs and gradients; PSConv
compiles with inductor; a Mask R-CNN trains through mmengine's ``compile``
runner option. Tiny widths and inputs: compiling is slow on CPU. The
benchmark (``python -m bench.run --sections compile``) compiles the full
backbones with inductor and times them against eager."""
import copy
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from msdet.datasets.synthetic_coco import make_coco_dataset
from msdet.ops import PSConv2d
from conftest import working_dir

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TWO_STAGES = dict(num_stages=2, out_indices=(0, 1), strides=(1, 2),
                  dilations=(1, 1))
BACKBONES = {
    'PSResNet': dict(depth=50, base_channels=16, **TWO_STAGES),
    'PSResNeXt': dict(depth=50, base_channels=16, groups=4, base_width=4,
                      **TWO_STAGES),
    'ScaleNet': dict(depth=50, structure=dict(seed=4), base_channels=16),
    'ElasticResNeXt': dict(depth=50, groups=8, base_channels=16,
                           **TWO_STAGES),
    'ResizableResNet': dict(depth=50, base_channels=16,
                            resize_factors=[0.5, 1.0], **TWO_STAGES),
    'SlimmableVGG': dict(depth=11, base_channels=8),
}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def outputs_and_grads(model, x):
    outs = model(x)
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    sum((o * torch.linspace(0, 1, o.numel()).view_as(o)).sum()
        for o in outs).backward()
    module = getattr(model, '_orig_mod', model)  # compiled: the module's
    grads = {n: p.grad.clone() for n, p in module.named_parameters()
             if p.grad is not None}
    return [o.detach() for o in outs], grads


def assert_same(eager, compiled):
    (y0, g0), (y1, g1) = eager, compiled
    assert len(y0) == len(y1)
    for a, b in zip(y0, y1):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    assert g0.keys() == g1.keys() and g0
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-3, atol=1e-5,
                                   msg=k)


@pytest.mark.parametrize('type_name', list(BACKBONES))
def test_backbone_is_one_graph_with_eager_outputs_and_gradients(type_name):
    """``fullgraph=True``: dynamo captures the whole training forward (an op
    it cannot capture would be an error here); AOT autograd traces its
    backward. Outputs and gradients equal eager's."""
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(dict(type=type_name, **BACKBONES[type_name]))
    model.train()
    twin = copy.deepcopy(model)
    x = torch.randn(2, 3, 32, 32)
    eager = outputs_and_grads(model, x)
    compiled = torch.compile(twin, backend='aot_eager', fullgraph=True)
    assert_same(eager, outputs_and_grads(compiled, x))


def test_psconv_with_inductor_equals_eager():
    """Inductor's kernels for PSConv (its rate-grouped convolutions on views
    of one weight, block sums; strided, as in a stage's first block) give
    eager's outputs and gradients."""
    torch.manual_seed(0)
    conv = PSConv2d(16, 16, 3, 2, bias=True)
    twin = copy.deepcopy(conv)
    x = torch.randn(2, 16, 9, 10)
    eager = outputs_and_grads(conv, x)
    compiled = torch.compile(twin, backend='inductor', fullgraph=True)
    assert_same(eager, outputs_and_grads(compiled, x))


def test_mask_rcnn_trains_through_mmengine_compile(tmp_path):
    """mmengine's ``compile`` runner option compiles the detector's
    ``train_step``; its first iteration's losses equal an eager run's from
    the same seed. (``backend='eager'``: dynamo's capture of mmdet's code,
    graph breaks included, is what takes time; AOT autograd and inductor's
    kernels are checked on the backbones and PSConv above, and the
    benchmark's compile section runs inductor on whole backbones.)"""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    make_coco_dataset(tmp_path / 'data/coco_demo', num_train=2, num_val=1)
    base = Config.fromfile(
        osp.join(REPO, 'configs/psconv/demo/mask_rcnn_psr50_fpn_demo.py'))
    base.model.backbone.update(base_channels=8)
    base.model.neck.in_channels = [32, 64, 128, 256]
    pipe = base.train_dataloader.dataset.pipeline
    next(t for t in pipe if t['type'] == 'Resize')['scale'] = (64, 64)
    next(t for t in pipe if t['type'] == 'RandomFlip')['prob'] = 0.0
    base.train_dataloader.update(batch_size=2, num_workers=0,
                                 persistent_workers=False)
    base.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1)
    base.param_scheduler = []
    base.val_cfg = base.val_dataloader = base.val_evaluator = None
    base.test_cfg = base.test_dataloader = base.test_evaluator = None
    base.default_hooks.checkpoint = None
    base.randomness = dict(seed=0, deterministic=True)

    class Losses(Hook):

        def __init__(self):
            self.seen = []

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            self.seen.append({k: float(v) for k, v in outputs.items()})

    losses = {}
    for compile_cfg in (False, dict(backend='eager', dynamic=False)):
        cfg = copy.deepcopy(base)
        cfg.work_dir = str(tmp_path / f'wd_{bool(compile_cfg)}')
        cfg.compile = compile_cfg
        hook = Losses()
        with working_dir(tmp_path):
            runner = Runner.from_cfg(cfg)
            runner.register_hook(hook)
            runner.train()
        if compile_cfg:  # what mmengine's option did
            assert 'compile' in type(runner.model.train_step).__module__ \
                or hasattr(runner.model.train_step, '_torchdynamo_orig_'
                           'callable')
        losses[bool(compile_cfg)] = hook.seen[0]
    assert losses[True].keys() == losses[False].keys()
    assert 'loss_mask' in losses[True]
    for k, v in losses[False].items():
        assert losses[True][k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
