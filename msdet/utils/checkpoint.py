"""Clear errors for checkpoint files: a cheap check that a file is a
complete PyTorch checkpoint (for the tools, before a runner is built) and a
loader for local files."""
import os.path as osp
import zipfile

# torch.save's legacy (pre-zip) format starts with pickle protocol 2 and
# torch's magic number
_LEGACY = b'\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19'


def check_checkpoint_file(path, what='checkpoint'):
    """Raise one clear error unless ``path`` is a local file in one of
    ``torch.save``'s formats: a zip archive whose central directory is intact
    (a truncated write loses it) or the legacy pickle format. URLs and
    other remote paths are left to mmengine. Reads a few bytes at both ends
    of the file, not the tensors."""
    path = str(path)
    if '://' in path:
        return
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path!r} not found.')
    with open(path, 'rb') as f:
        head = f.read(len(_LEGACY))
    if head.startswith(b'PK\x03\x04'):
        if zipfile.is_zipfile(path):
            return
        raise ValueError(f'{what} {path!r} is truncated or corrupted (its zip '
                         'directory is missing); use a complete copy or an '
                         'earlier checkpoint.')
    if head == _LEGACY:
        return
    raise ValueError(f'{what} {path!r} is not a PyTorch checkpoint (neither '
                     "torch.save's zip nor its legacy format).")


def load_local_checkpoint(filename, map_location=None):
    """``torch.load`` a local checkpoint (``weights_only``, torch's default,
    with msdet's allow-list of mmengine's types) with clear errors: a
    missing file is a ``FileNotFoundError``, an unreadable one a
    ``RuntimeError`` naming it (used by the checkpoint converters)."""
    import torch
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} not found.')
    try:
        return torch.load(filename, map_location=map_location)
    except Exception as err:
        if 'Unsupported global' in str(err):
            raise  # a type weights_only refuses: torch's message names it
        raise RuntimeError(
            f'checkpoint {filename!r} cannot be read: it is truncated, '
            'corrupted or not a PyTorch checkpoint '
            f'({type(err).__name__}).') from err
