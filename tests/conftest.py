"""Shared test setup: one torch thread, tools/ scripts as modules, and a
working directory for tools that read ``data/...`` relative paths."""
import contextlib
import importlib.util
import os
import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The suite's models are small: on a 2-core machine (busy or not) two
    OpenMP threads mostly wait on each other, one is as fast or faster. Set
    before every test, as some (the benchmark's) change it."""
    torch.set_num_threads(1)


def load_tool(path):
    """Import ``tools/<path>.py`` (e.g. 'train', 'analysis/scale_benchmark')
    under a private module name."""
    name = 'msdet_tools_' + path.replace('/', '_')
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO, 'tools', f'{path}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def working_dir(path):
    """Run with ``path`` as the working directory (where the demo configs
    find ``data/coco_demo``), restored afterwards."""
    cwd = os.getcwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(cwd)


# The lines an msdet config holds (through configs/_base_/) to use msdet's
# runtime components (README, Reliability); tests add them to the configs
# they write. COCO configs add COCO_DATASET; configs with SubnetSwitchHook
# name a Subnet*TrainLoop.
RUNTIME_COMPONENTS = """
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook'),
    checkpoint_fit=dict(type='CheckpointFitHook'),
    rng_state=dict(type='RNGStateHook'))
model_wrapper_cfg = dict(type='CPUCompatibleDDP')
"""
COCO_DATASET = """
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader
"""
COCO_COMPONENTS = COCO_DATASET + RUNTIME_COMPONENTS
