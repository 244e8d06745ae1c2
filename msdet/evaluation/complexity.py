"""FLOPs of a backbone or a whole detector (mmengine.analysis, 1 MAC = 1 FLOP)."""
import torch
from mmengine.analysis import FlopAnalyzer

from ..ops.switchable import set_subnet


def _count(module, inputs):
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return analyzer.total()


def backbone_gflops(backbone, inputs):
    """GFLOPs of ``backbone`` on ``inputs`` (N, C, H, W), per image."""
    with torch.no_grad():
        return _count(backbone, (inputs, )) / inputs.shape[0] / 1e9


def model_gflops(model, inputs, data_samples):
    """GFLOPs per image of a whole mmdet model in ``tensor`` mode (as mmdet's
    get_flops.py counts them: backbone, neck, RPN, RoI heads)."""
    with torch.no_grad():
        flops = _count(_TensorForward(model, data_samples), (inputs, ))
    return flops / inputs.shape[0] / 1e9


def subnet_gflops(model, inputs, data_samples, subnets):
    """Per sub-network (settings for ``set_subnet``), ``dict(backbone=,
    model=)``: GFLOPs per image of the backbone and of the whole model,
    switched to it. The model is left at the last one."""
    out = []
    for settings in subnets:
        set_subnet(model, **settings)
        out.append(dict(backbone=backbone_gflops(model.backbone, inputs),
                        model=model_gflops(model, inputs, data_samples)))
    return out


class _TensorForward(torch.nn.Module):
    """``model(inputs, data_samples, mode='tensor')`` as a one-input module."""

    def __init__(self, model, data_samples):
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs):
        return self.model(inputs, self.data_samples, mode='tensor')
