from .resizable_adapt import ResizableAdaptDetector

__all__ = ['ResizableAdaptDetector']
