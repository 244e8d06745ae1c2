"""Checkpoints are written atomically and never read silently when broken."""
import os

import pytest
import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

import msdet  # noqa: F401


def test_save_is_atomic_when_interrupted(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(3)}}, str(path))
    good = path.read_bytes()

    with pytest.raises(TypeError):  # the write fails after the file opened
        LocalBackend().put(object(), str(path))
    assert path.read_bytes() == good  # the previous checkpoint survives
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # no temp file left
    assert torch.equal(_load_checkpoint(str(path))['state_dict']['w'],
                       torch.ones(3))


def test_truncated_or_foreign_checkpoint_is_one_clear_error(tmp_path):
    path = tmp_path / 'epoch_2.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(1000)}}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(RuntimeError, match='epoch_2.pth.*truncated'):
        _load_checkpoint(str(path))
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(RuntimeError, match='notes.pth'):
        _load_checkpoint(str(text))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        _load_checkpoint(str(tmp_path / 'missing.pth'))
