"""Atomic file writes: a run killed mid-write never leaves a truncated file.

Every file is written to a temp file beside it, named
``.<name>.<random>.part``, flushed to disk and renamed over ``<name>``; a
rename is atomic, so readers see the old file or the new one, never a part.
The written file gets the permissions a plain ``open(path, 'w')`` would give
it (the umask's, or those of the file it replaces), not ``mkstemp``'s 0600.
A process killed mid-write leaves its ``.part`` file behind (``.part.pkl``
and the like from :func:`part_path`);
:func:`remove_stale_parts` deletes those of a directory (the checkpoint hook
does so when a run starts).

:class:`AtomicLocalBackend` is mmengine's local file backend with atomic
``put`` / ``put_text``, registered as the storage backend ``'atomic_local'``
(``backend_args=dict(backend='atomic_local')``); mmengine's own ``'local'``
backend is left as it is.
"""
import json
import os
import re
import secrets
import stat
import tempfile
from contextlib import contextmanager

from mmengine.fileio import LocalBackend, register_backend

PART_SUFFIX = '.part'
# .<name>.<8 random chars>.part[.<extension of name>]
_PART = re.compile(r'^\..+\.[A-Za-z0-9_]{8}' + re.escape(PART_SUFFIX) +
                   r'(\.[A-Za-z0-9]+)?$')


def _umask():
    """The process umask, read without changing it where Linux allows."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # other systems: set and restore
    os.umask(mask)
    return mask


def _mode_for(path):
    """What ``open(path, 'w')`` would leave: the permissions of the existing
    file, else 0o666 minus the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


@contextmanager
def atomic_open(path, mode='w', **kwargs):
    """Open a temp file beside ``path``; rename it over ``path`` on success,
    delete it on any error. ``kwargs`` go to ``open`` (e.g. ``encoding``)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=PART_SUFFIX,
                               prefix='.' + os.path.basename(path) + '.')
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def part_path(path):
    """A temp name beside ``path`` for a writer that takes a path (write
    there, then ``os.replace`` it over ``path``), ending in ``path``'s
    extension for writers that check it; :func:`remove_stale_parts` knows
    it."""
    directory, name = os.path.split(os.path.abspath(path))
    ext = os.path.splitext(name)[1]
    return os.path.join(
        directory, f'.{name}.{secrets.token_hex(4)}{PART_SUFFIX}{ext}')


def dump_json(obj, path, **kwargs):
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_open(path) as f:
        json.dump(obj, f, **kwargs)


def remove_stale_parts(directory):
    """Delete the ``.part`` files :func:`atomic_open` left in ``directory``
    (not its subdirectories) when a process was killed mid-write; returns
    their names. Call it only when no write to ``directory`` is under way."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    stale = sorted(n for n in names if _PART.match(n) and
                   os.path.isfile(os.path.join(directory, n)))
    for name in stale:
        os.unlink(os.path.join(directory, name))
    return stale


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` / ``put_text`` write
    atomically (:func:`atomic_open`). Select it with
    ``backend_args=dict(backend='atomic_local')``, e.g. in a checkpoint
    hook; :class:`msdet.engine.AtomicCheckpointHook` does so by default."""

    def put(self, obj, filepath):
        with atomic_open(filepath, 'wb') as f:
            f.write(obj)

    def put_text(self, obj, filepath, encoding='utf-8'):
        with atomic_open(filepath, 'w', encoding=encoding) as f:
            f.write(obj)
