from .elastic_resnext import ElasticBottleneck, ElasticResNeXt
from .ps_resnet import PSBottleneck, PSResNet, PSResNeXt
from .resizable_resnet import ResizableResNet
from .scalenet import SABottleneck, ScaleNet
from .slimmable_vgg import SlimmableVGG

__all__ = [
    'ElasticBottleneck', 'ElasticResNeXt', 'PSBottleneck', 'PSResNet',
    'PSResNeXt', 'ResizableResNet', 'SABottleneck', 'ScaleNet', 'SlimmableVGG'
]
