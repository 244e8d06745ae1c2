"""Atomic file writes, AtomicCheckpointHook and the checkpoint file check."""
import os
import stat

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint
from torch import nn

from msdet.utils.checkpoint import check_checkpoint_file
from msdet.utils.fileio import (AtomicLocalBackend, atomic_open, dump_json,
                                remove_stale_parts)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the umask for a test, restored afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def test_atomic_backend_keeps_the_previous_file(tmp_path):
    backend = get_file_backend(backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    path = tmp_path / 'epoch_1.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(3)}}, str(path),
                    backend_args=dict(backend='atomic_local'))
    good = path.read_bytes()
    with pytest.raises(TypeError):  # the write fails after the file opened
        backend.put(object(), str(path))
    assert path.read_bytes() == good  # the previous checkpoint survives
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # no temp file left
    assert torch.equal(_load_checkpoint(str(path))['state_dict']['w'],
                       torch.ones(3))
    # mmengine's own local backend is untouched
    assert type(get_file_backend(str(path))).__name__ == 'LocalBackend'


def test_written_files_get_the_umasks_permissions(tmp_path, umask):
    dump_json({'a': 1}, tmp_path / 'a.json')
    assert mode(tmp_path / 'a.json') == 0o644
    umask(0o077)
    dump_json({'a': 1}, tmp_path / 'b.json')
    assert mode(tmp_path / 'b.json') == 0o600
    os.chmod(tmp_path / 'a.json', 0o640)  # a rewrite keeps a file's mode
    with atomic_open(tmp_path / 'a.json') as f:
        f.write('{}')
    assert mode(tmp_path / 'a.json') == 0o640
    assert (tmp_path / 'a.json').read_text() == '{}'


def test_only_stale_part_files_are_removed(tmp_path):
    names = ['.iter_4.pth.k2j3h4g5.part', '.last_checkpoint.a_b1c2d3.part',
             'notes.part', '.hidden', 'epoch_1.pth', '.x.short.part']
    for name in names:
        (tmp_path / name).write_text('x')
    assert remove_stale_parts(tmp_path) == sorted(names[:2])
    assert sorted(os.listdir(tmp_path)) == sorted(names[2:])


def test_checkpoint_file_check(tmp_path):
    path = tmp_path / 'epoch_2.pth'
    torch.save({'state_dict': {'w': torch.ones(1000)}}, path)
    check_checkpoint_file(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r"checkpoint '.*epoch_2.pth' is "
                       'truncated or corrupted'):
        check_checkpoint_file(path)
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(ValueError, match=r"notes.pth' is not a PyTorch "
                       'checkpoint'):
        check_checkpoint_file(text)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        check_checkpoint_file(tmp_path / 'missing.pth')
    legacy = tmp_path / 'legacy.pth'
    torch.save({'w': torch.ones(2)}, legacy,
               _use_new_zipfile_serialization=False)
    check_checkpoint_file(legacy)


class Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        loss = ((self.lin(torch.stack(inputs)) - 1)**2).mean()
        return dict(loss=loss) if mode == 'loss' else [loss]


def toy_runner(work_dir, **hook):
    return Runner(
        model=Toy(), work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=[dict(inputs=torch.ones(2))] * 4, batch_size=2,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=3),
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook',
                                           interval=1, **hook)),
        custom_hooks=[dict(type='InodeProbe')], default_scope='mmengine')


@pytest.fixture(scope='module')
def inode_probe():
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS

    class InodeProbe(Hook):
        """The inode of last_checkpoint after each epoch (a file written
        in place keeps its inode; a renamed temp file brings a new one),
        kept open so that the number is not reused."""
        priority = 'LOWEST'
        inodes, handles = [], []

        def after_train_epoch(self, runner):
            path = os.path.join(runner.work_dir, 'last_checkpoint')
            self.handles.append(open(path))
            self.inodes.append(os.fstat(self.handles[-1].fileno()).st_ino)

    HOOKS.register_module(module=InodeProbe, force=True)
    return InodeProbe


def test_atomic_checkpoint_hook(tmp_path, inode_probe, umask):
    """Checkpoints and last_checkpoint are renamed into place, with the
    umask's permissions; max_keep_ckpts and published_keys work as in
    mmengine; stale temp files of a killed run are removed at the start."""
    for name in ('.epoch_2.pth.k2j3h4g5.part',
                 '.last_checkpoint.a1b2c3d4.part'):
        (tmp_path / name).write_bytes(b'half')
    runner = toy_runner(tmp_path, max_keep_ckpts=2,
                        published_keys=['meta', 'state_dict'])
    runner.train()
    files = sorted(p.name for p in tmp_path.iterdir()
                   if p.is_file() and not p.name.endswith('.py'))
    published = [f for f in files if f.startswith('epoch_3-')]
    assert len(published) == 1
    assert files == ['epoch_2.pth', *published, 'epoch_3.pth',
                     'last_checkpoint']
    assert (tmp_path / 'last_checkpoint').read_text() == \
        str(tmp_path / 'epoch_3.pth')
    assert len(set(inode_probe.inodes)) == 3  # renamed into place each time
    assert [f.read() for f in inode_probe.handles] == [
        str(tmp_path / f'epoch_{e}.pth') for e in (1, 2, 3)]
    for f in inode_probe.handles:
        f.close()
    for name in files:
        assert mode(tmp_path / name) == 0o644, name
    assert set(_load_checkpoint(str(tmp_path / published[0]))) == \
        {'meta', 'state_dict'}


def test_atomic_checkpoint_hook_refuses_file_client_args(tmp_path):
    with pytest.raises(ValueError, match='file_client_args=.* use '
                       'backend_args'):
        toy_runner(tmp_path, file_client_args=dict(backend='disk'))
