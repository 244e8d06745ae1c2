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


def test_backbone_shape_mismatch_names_the_first_key(tmp_path):
    from msdet.models.backbones import PSResNet
    src = PSResNet(depth=50, base_channels=16)
    path = tmp_path / 'ps50_narrow.pth'
    torch.save({'state_dict': src.state_dict()}, path)
    dst = PSResNet(depth=50, base_channels=32,
                   init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match=r"'conv1.weight' has shape "
                       r'\(16, 3, 7, 7\), the model expects \(32, 3, 7, 7\)'):
        dst.init_weights()


def test_head_mismatch_still_only_warns_for_finetuning(tmp_path):
    """load_from of a detector with other classes keeps mmdet's behaviour."""
    from mmengine.runner.checkpoint import load_checkpoint
    from torch import nn

    class Det(nn.Module):
        def __init__(self, classes):
            super().__init__()
            self.backbone = nn.Conv2d(3, 4, 1)
            self.head = nn.Linear(4, classes)

    path = tmp_path / 'det.pth'
    torch.save({'state_dict': Det(80).state_dict()}, path)
    det = Det(3)
    load_checkpoint(det, str(path))  # no error: only the head differs
    src = torch.load(path)['state_dict']
    assert torch.equal(det.backbone.weight, src['backbone.weight'])
