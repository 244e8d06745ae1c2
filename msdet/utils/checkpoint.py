"""A cheap check that a file is a complete PyTorch checkpoint, for the tools
to give one clear error before a runner is built."""
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
