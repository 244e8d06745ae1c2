"""ONNX export of msdet models (``tools/deployment/export_onnx.py``): the
parts of a detector or segmentor that export (``parts``), the export with
its checks (``onnx_export``) and the comparison with PyTorch
(``verify``). Needs ``onnx`` and ``onnxruntime``: ``pip install
'msdet[deploy]'``; importing this package does not."""
from .model import apply_subnet, default_shape, parse_subnet
from .onnx_export import OPSET, export_onnx, require
from .parts import PARTS, build_part

__all__ = [
    'apply_subnet', 'default_shape', 'parse_subnet', 'OPSET',
    'export_onnx', 'require', 'PARTS', 'build_part'
]
