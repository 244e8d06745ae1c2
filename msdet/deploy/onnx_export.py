"""Writing an export part (``msdet.deploy.parts``) as an ONNX graph.

The graph is traced by torch's TorchScript-based exporter
(``torch.onnx.export(..., dynamo=False)``, opset 17), which torch 2.13 still
ships (deprecated in favour of the ``torch.export``-based exporter, which
needs ``onnxscript``, took 10-40 s instead of 1-5 s per small backbone here,
and fixed the batch size it was not told about). Every graph is checked
before it is written, and nothing is written when a check fails:

- **standard operators only**: every node is in the default ONNX domain, so
  onnxruntime's CPU provider (or any ONNX runtime) runs it without custom
  op libraries; a node of another domain (e.g. mmcv's deformable conv,
  ``mmcv::MMCVDeformConv2d``) is one error naming the model part (module
  path and type) it comes from;
- **size independence** (dynamic height / width): the part is traced a
  second time on inputs of another size and both graphs must be the same,
  node for node and constant for constant. A graph that replays a Python
  decision made on the export input's size (a size baked in as a constant,
  a branch chosen by it) differs there, and is refused with the first
  module that differs; such a model can still be exported with a fixed
  input size (``dynamic=False``).

A failure inside the exporter is reported with the module it was tracing.
"""
import contextlib
import hashlib
import os
import re
import sys
import warnings

import torch

from ..utils.fileio import part_path

OPSET = 17
#: ONNX's default operator domain (both spellings)
STANDARD_DOMAINS = ('', 'ai.onnx')
DEPLOY_EXTRA = "pip install 'msdet[deploy]' (onnx and onnxruntime)"


def require(package: str):
    """Import ``package`` (``onnx`` or ``onnxruntime``), or one error naming
    the extra to install."""
    import importlib
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ModuleNotFoundError(
            f'ONNX export needs {package}, which is not installed: '
            f'{DEPLOY_EXTRA}.') from None


def export_onnx(part, inputs: tuple, path: str, dynamic: bool = True,
                other_inputs: tuple = None):
    """Write ``part`` traced on ``inputs`` to ``path`` as ONNX; returns the
    ``onnx.ModelProto``. With ``dynamic`` the batch and spatial axes of
    ``part.dynamic_axes()`` are free and the graph traced on
    ``other_inputs`` (another size) must be the same. Written atomically:
    on any error ``path`` is left as it was."""
    onnx = require('onnx')
    part.eval()
    part.prepare(inputs)
    tmp = part_path(path)
    try:
        proto = _trace(part, inputs, tmp, dynamic)
        check_standard_ops(proto, part)
        if dynamic and other_inputs is not None:
            other = part_path(path)
            try:
                check_same_graph(proto, _trace(part, other_inputs, other,
                                               dynamic), part)
            finally:
                if os.path.exists(other):
                    os.unlink(other)
        onnx.checker.check_model(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return proto


@contextlib.contextmanager
def _no_native_stdout():
    """File descriptor 1 to /dev/null: the exporter's C++ log prints the
    whole TorchScript graph there when an export fails (torch 2.13 leaves
    that log on; the error itself is reported)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, 'w') as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _trace(part, inputs, path, dynamic):
    onnx = require('onnx')
    with warnings.catch_warnings(), torch.no_grad(), _no_native_stdout():
        # the exporter's deprecation notice and tracer warnings; what they
        # warn about (sizes frozen by the trace) is checked on the graph
        warnings.simplefilter('ignore')
        try:
            torch.onnx.export(
                part, inputs, path, dynamo=False, opset_version=OPSET,
                input_names=list(part.input_names),
                output_names=list(part.output_names),
                dynamic_axes=part.dynamic_axes() if dynamic else None,
                do_constant_folding=True)
        except Exception as err:
            where = _scope_in(str(err), part) or 'the model'
            if 'because it is not constant' in str(err):
                raise RuntimeError(
                    f'ONNX export failed in {where}: an argument that the '
                    'ONNX operator needs as a constant (e.g. a kernel size) '
                    'is computed from the input size at this export size '
                    f'{_size(inputs)}; export at a size where it is not '
                    '(e.g. a larger --shape), or for this size only '
                    '(--static).') from err
            first = str(err).strip().splitlines()[0] if str(err) else ''
            raise RuntimeError(f'ONNX export failed in {where}: '
                               f'{type(err).__name__}: {first[:300]}') from err
    return onnx.load(path)


def _size(inputs):
    return 'x'.join(str(v) for v in inputs[0].shape[2:])


def module_name(scope: str, part) -> str:
    """``'backbone.layer2.0.conv2 (DeformConv2dPack)'`` for an exported
    node name ``'/backbone/layer2/layer2.0/conv2/<Op>'`` (the modules
    called while tracing, each named by its attribute, a child of a
    ``Sequential`` with its parent's prefix): the module's path in the
    user's model and its type; ``''`` if there is no such module."""
    path = []
    for name in scope.strip('/').split('/')[:-1]:
        if path and name.startswith(path[-1] + '.'):
            path[-1] = name
        elif name:
            path.append(name)
    if path[:1] == ['model']:  # the part called the model itself
        path = path[1:]
    modules = dict(part.model.named_modules())
    while path and '.'.join(path) not in modules:
        path.pop()
    if not path:
        return ''
    qualified = '.'.join(path)
    return f'{qualified} ({type(modules[qualified]).__name__})'


def _scope_in(text: str, part) -> str:
    """The module of the first exported node name in ``text``."""
    for scope in re.findall(r'scope: ([\w.:/]+)', text):
        name = module_name(_torch_scope(scope) + '/x', part)
        if name:
            return name
    return ''


def _torch_scope(scope: str) -> str:
    """``'/model/backbone/...'`` from a tracer scope ``'pkg.Class::/pkg.
    Class::model/...'`` (each level ``type::name``)."""
    return '/' + '/'.join(level.split('::')[-1] for level in scope.split('/')
                          if '::' in level and level.split('::')[-1])


def check_standard_ops(proto, part) -> None:
    """One error naming the module of the first node outside ONNX's
    default domain (and how many such nodes there are)."""
    custom = [n for n in proto.graph.node if n.domain not in STANDARD_DOMAINS]
    if not custom:
        return
    node = custom[0]
    where = module_name(node.name, part) or f'node {node.name!r}'
    more = f' (and {len(custom) - 1} more such nodes)' if len(custom) > 1 \
        else ''
    raise ValueError(
        f'{where} exports as {node.domain}::{node.op_type}, not a standard '
        f'ONNX operator{more}: onnxruntime (CPU) and other runtimes cannot '
        'run it without that domain\'s custom op library. Replace that part '
        'of the model (e.g. a deformable conv by a plain one) to export it.')


def _signature(node):
    attrs = []
    for a in node.attribute:
        attrs.append((a.name, a.type, a.i, a.f, a.s, tuple(a.ints),
                      tuple(a.floats), hashlib.sha1(
                          a.t.SerializeToString()).hexdigest()))
    return node.op_type, node.domain, tuple(attrs)


def check_same_graph(proto, other, part) -> None:
    """Refuse a graph that is not the same when traced on another input size
    (its ops, attributes or constants depend on the export size)."""
    nodes, others = proto.graph.node, other.graph.node
    for i, (a, b) in enumerate(zip(nodes, others)):
        if _signature(a) != _signature(b):
            return _size_dependent(a, part)
    if len(nodes) != len(others):
        return _size_dependent(nodes[min(len(nodes), len(others)) - 1], part)
    mine = {t.name: t.SerializeToString() for t in proto.graph.initializer}
    for t in other.graph.initializer:
        if mine.get(t.name) != t.SerializeToString():
            raise ValueError(_size_message(f'its constant {t.name!r}'))


def _size_dependent(node, part):
    where = module_name(node.name, part) or f'node {node.name!r}'
    raise ValueError(_size_message(where))


def _size_message(where):
    return (f'the graph is not the same at another input size, from {where} '
            'on: the model decides something in Python from the input size '
            '(a size or a branch), which a traced graph fixes to the export '
            'size. Export it for one input size (--static, the size of '
            '--shape) or make that computation size-independent.')
