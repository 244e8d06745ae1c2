"""Make torch >= 2.6 load the checkpoints mmengine 0.10.7 writes.

mmengine calls ``torch.load`` without ``weights_only``; since torch 2.6 that
means ``weights_only=True``, which refuses the few non-tensor objects
mmengine's checkpoints hold (the message hub's ``HistoryBuffer`` of numpy
arrays and numpy scalars). Breaking ``resume=True``, ``load_from`` and
``init_detector`` on mmengine's own checkpoints. Instead of turning
``weights_only`` off, exactly these types are added to torch's allow-list
of safe globals, so arbitrary pickled code is still refused.
"""
import pickle

import numpy as np
import torch


def mmengine_checkpoint_types():
    """The non-tensor types found in checkpoints written by mmengine."""
    from collections import Counter
    from mmengine.logging.history_buffer import HistoryBuffer
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
        np.uint16, np.uint32, np.uint64, np.float16, np.float32,
        np.float64)]
    return [HistoryBuffer, Counter, _reconstruct, scalar, np.ndarray,
            np.dtype, *dtypes]


def _history_buffer_getattr(obj, name):
    """Stands in for ``getattr`` while unpickling with ``weights_only``.

    ``HistoryBuffer.__getstate__`` pickles its statistics methods (min, max,
    mean, ...) as ``getattr(HistoryBuffer, name)``. Only that lookup is
    allowed; any other use of ``getattr`` in a checkpoint is refused.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in vars(HistoryBuffer) \
            and callable(vars(HistoryBuffer)[name]):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); msdet allows '
        'getattr only for HistoryBuffer statistics methods.')


if hasattr(torch.serialization, 'add_safe_globals'):
    torch.serialization.add_safe_globals(
        mmengine_checkpoint_types() +
        [(_history_buffer_getattr, 'builtins.getattr')])
