"""Atomic file writes: a run killed mid-write never leaves a truncated file."""
import json
import os
import tempfile
from contextlib import contextmanager


@contextmanager
def atomic_open(path, mode='w', **kwargs):
    """Open a temp file beside ``path``; rename it over ``path`` on success.

    ``kwargs`` go to ``open`` (e.g. ``encoding``)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix='.' + os.path.basename(path) + '.')
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def dump_json(obj, path, **kwargs):
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_open(path) as f:
        json.dump(obj, f, **kwargs)
