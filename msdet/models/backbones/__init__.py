from .ps_resnet import PSBottleneck, PSResNet, PSResNeXt

__all__ = ['PSBottleneck', 'PSResNet', 'PSResNeXt']
