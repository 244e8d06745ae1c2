"""Checking an exported graph against PyTorch: outputs and latency.

Outputs: onnxruntime (CPU provider) and the model's own PyTorch code (eval
mode, ``ExportPart.reference``) on the same inputs; the error of an output
is ``max |onnx - torch| / max |torch|`` (relative to the output's largest
magnitude, so near-zero values do not blow it up), and a check reports the
largest over all outputs and which output it is.

Latency: PyTorch eager and onnxruntime alternate run by run in one process
(after warm-up runs), on the same input and the same number of threads, and
the medians are compared: load from other processes on the machine slows
both alike.
"""
import os
import os.path as osp
import statistics
import tempfile
import time

import numpy as np
import torch

from .onnx_export import require


def session(path: str, threads: int = None):
    """An onnxruntime CPU session of ``path`` using ``threads`` threads
    (default: torch's)."""
    ort = require('onnxruntime')
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    # idle threads sleep instead of spinning, which would take the cores
    # from PyTorch's runs alternating with these
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(path, options,
                                providers=['CPUExecutionProvider'])


def run_session(sess, names, inputs):
    return sess.run(None, {name: t.numpy() for name, t in zip(names, inputs)})


def max_rel_error(outputs, references, names):
    """``(error, name)`` of the output farthest from its reference; a shape
    mismatch is an infinite error."""
    worst = (0.0, names[0] if names else '')
    for out, ref, name in zip(outputs, references, names):
        ref = ref.detach().numpy()
        if out.shape != ref.shape:
            return float('inf'), f'{name} (shape {out.shape} != {ref.shape})'
        scale = float(np.abs(ref).max()) or 1.0
        err = float(np.abs(out - ref).max()) / scale
        if not err <= worst[0]:  # NaN counts as worse
            worst = (err, name)
    return worst


def compare(part, sess, inputs):
    """The largest relative error of ``sess`` against ``part.reference``."""
    if len(sess.get_outputs()) != len(part.output_names):
        raise ValueError(f'the graph has {len(sess.get_outputs())} outputs, '
                         f'the model part {len(part.output_names)}.')
    outputs = run_session(sess, part.input_names, inputs)
    return max_rel_error(outputs, part.reference(*inputs), part.output_names)


def latency(part, sess, inputs, repeat: int = 10, warmup: int = 2):
    """Median milliseconds of PyTorch eager (``part.reference``) and of
    onnxruntime on ``inputs``, measured alternately, and ``ratio``: the
    median over the runs of PyTorch's time over onnxruntime's right after
    it (above 1: onnxruntime is faster)."""
    feeds = {name: t.numpy() for name, t in zip(part.input_names, inputs)}
    times = {'torch': [], 'onnxruntime': []}
    for i in range(warmup + repeat):
        start = time.perf_counter()
        part.reference(*inputs)
        mid = time.perf_counter()
        sess.run(None, feeds)
        end = time.perf_counter()
        if i >= warmup:
            times['torch'].append(1000 * (mid - start))
            times['onnxruntime'].append(1000 * (end - mid))
    result = {k: statistics.median(v) for k, v in times.items()}
    result['ratio'] = statistics.median(
        t / o for t, o in zip(times['torch'], times['onnxruntime']))
    return result


def demo_image(seed: int = 0) -> np.ndarray:
    """A real-looking BGR image (uint8, 256x256): the first validation image
    of msdet's embedded COCO-format dataset (``tools/make_coco_demo.py``:
    shapes on a textured background), rendered into a temporary folder."""
    import mmcv

    from ..datasets.synthetic_coco import make_coco_dataset
    with tempfile.TemporaryDirectory() as tmp:
        summary = make_coco_dataset(tmp, num_train=1, num_val=1, seed=seed)
        img_dir = summary['val']['img_dir']
        return mmcv.imread(osp.join(img_dir, sorted(os.listdir(img_dir))[0]))


def preprocess(model, image: np.ndarray, shape) -> torch.Tensor:
    """``image`` (BGR uint8, as mmdet / mmseg load it) resized to ``shape``
    ``(h, w)`` and normalised by the model's data preprocessor: the graph's
    input for it, ``(1, 3, h, w)``."""
    import mmcv
    h, w = shape
    img = mmcv.imresize(image, (w, h))
    tensor = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    data = model.data_preprocessor(
        dict(inputs=[tensor], data_samples=None), False)
    return data['inputs'].float()
