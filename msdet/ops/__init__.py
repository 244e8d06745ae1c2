from .psconv import PSConv2d

__all__ = ['PSConv2d']
