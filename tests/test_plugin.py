"""msdet is a plugin: importing it registers modules and changes nothing of
mmengine, mmdet, mmseg, mmcv or torch, neither at import nor while a model
with sub-network switching trains, and no method of the model is replaced.
"""
import json
import os
import subprocess
import sys

import pytest

from msdet.datasets.synthetic_coco import make_coco_dataset
from conftest import COCO_COMPONENTS, REPO
from test_mutualnet import SMALL_CFG

HOSTS = ('torch', 'mmengine', 'mmcv', 'mmdet', 'mmseg')
# The small MutualNet config with every msdet component a config can name.
CFG = "_base_ = 'small.py'\n" + COCO_COMPONENTS + """
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
train_cfg = dict(type='SubnetEpochBasedTrainLoop', max_epochs=1)
param_scheduler = []
"""
# Trains one epoch (2 iterations) and resumes a second one, in-process; a
# probe compares the callables in the model's instance dicts (where an
# overwritten method would be) during training with those after building.
TRAIN = """
def train(config):
    import torch
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS
    from mmengine.runner import Runner

    def callables(model):
        return {f'{name}.{key}': value for name, m in model.named_modules()
                for key, value in vars(m).items()
                if callable(value) and not isinstance(value, torch.nn.Module)}

    seen = []

    class ModelProbe(Hook):
        def before_train(self, runner):
            self.built = callables(runner.model)

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            now = callables(runner.model)
            assert now.keys() == self.built.keys() and all(
                now[k] is self.built[k] for k in now), (self.built, now)
            seen.append(sorted(now))

    HOOKS.register_module(module=ModelProbe, force=True)
    for epochs, resume in ((1, False), (2, True)):
        cfg = Config.fromfile(config)
        cfg.work_dir = 'wd'
        cfg.train_cfg.max_epochs = epochs
        cfg.resume = resume
        cfg.custom_hooks.append(dict(type='ModelProbe'))
        Runner.from_cfg(cfg).train()
    return seen
"""
SNAPSHOT = """
import importlib, sys

HOSTS = %r


def callable_(value):
    return callable(value) or isinstance(value, (staticmethod, classmethod,
                                                 property))


def entries(snap, where, table):
    # the callables a lookup table holds (registries, file backends,
    # checkpoint loader schemes): new entries are registrations, a replaced
    # one is an override
    for key, value in list(table.items()):
        if callable_(value):
            snap[f'{where}[{key!r}]'] = value


def snapshot(modules):
    # every callable attribute of these modules and of every class they
    # hold (functions, methods, descriptors, classes), and the callables in
    # their dicts and registries, by identity
    from mmengine.registry import Registry
    snap, classes = {}, {}
    for name in modules:
        module = sys.modules[name]
        for attr, value in list(vars(module).items()):
            if attr.startswith('__'):
                continue
            if callable_(value):
                snap[f'{name}.{attr}'] = value
            if isinstance(value, type):
                classes[id(value)] = value
            elif isinstance(value, dict):
                entries(snap, f'{name}.{attr}', value)
            elif isinstance(value, Registry):
                entries(snap, f'{name}.{attr}', value._module_dict)
    for cls in classes.values():
        where = f'{cls.__module__}.{cls.__qualname__}'
        for attr, value in list(vars(cls).items()):
            if callable_(value):
                snap[f'{where}.{attr}'] = value
            elif isinstance(value, dict):
                entries(snap, f'{where}.{attr}', value)
    return snap


def diff(a, b):
    changed = sorted(k for k in a.keys() & b.keys() if a[k] is not b[k])
    return dict(changed=changed, added=sorted(b.keys() - a.keys()),
                removed=sorted(a.keys() - b.keys()))
""" % (HOSTS, )


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp('plugin')
    make_coco_dataset(root / 'data/coco_demo', num_train=4, num_val=1,
                      image_size=128)
    (root / 'small.py').write_text(SMALL_CFG)
    (root / 'cfg.py').write_text(CFG)
    return root


def run_python(code, workdir):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    out = subprocess.run([sys.executable, '-c', code], cwd=workdir, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_and_training_change_nothing_of_the_hosts(workdir):
    """1. which host modules importing msdet and training load; 2. in a
    fresh interpreter, those modules first, then the identity of every
    callable they and their classes hold before importing msdet, after it,
    and after training (and resuming) a switching model with every msdet
    component; all equal."""
    import torch
    torch.set_num_threads(1)
    modules = run_python(TRAIN + f"""
import json, sys
import msdet
train('cfg.py')
print(json.dumps([m for m in sys.modules if m.split('.')[0] in {HOSTS!r}]))
""", workdir)
    assert 'mmengine.runner.checkpoint' in modules
    result = run_python(SNAPSHOT + TRAIN + f"""
import json
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except Exception:
        pass  # modules of optional parts, loaded only when present
# torch wraps an optimizer class's step() the first time one is made (its
# profiler hook): let it do so before the baseline
import torch
for cls in vars(torch.optim).values():
    if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer):
        try:
            cls([torch.zeros(1, requires_grad=True)])
        except Exception:
            pass
names = [m for m in sys.modules if m.split('.')[0] in HOSTS]
before = snapshot(names)
import msdet
imported = snapshot(names)
probed = train('cfg.py')
trained = snapshot(names)
print(json.dumps(dict(count=len(before), modules=len(names),
                      on_import=diff(before, imported),
                      on_train=diff(imported, trained),
                      probed=probed)))
""", workdir)
    assert result['modules'] > 500 and result['count'] > 50000
    for phase in ('on_import', 'on_train'):
        assert result[phase]['changed'] == [], phase
        assert result[phase]['removed'] == [], phase
        # new attributes: none; new entries of tables: registrations
        assert [k for k in result[phase]['added'] if '[' not in k] == [], \
            phase
    registered = result['on_import']['added']
    for name in ('CheckedCocoDataset', 'AtomicCheckpointHook',
                 'CheckpointFitHook', 'RNGStateHook', 'SubnetSwitchHook',
                 'SubnetEpochBasedTrainLoop', 'CPUCompatibleDDP',
                 'atomic_local', 'PSResNet'):
        assert any(f"['{name}']" in k for k in registered), name
    # 4 iterations probed, each with the instance callables the model had
    # when built (mmdet's losses keep their criterion function there)
    assert len(result['probed']) == 4
    assert all(p == result['probed'][0] for p in result['probed'])
    assert all(k.endswith('.cls_criterion') for k in result['probed'][0])
