"""msdet's command-line tools: a user error is one message and exit status
1 (--debug / MSDET_DEBUG=1: the traceback), config overrides are checked
for typos, the shell launchers use the project's Python, an MMSegmentation
config without mmseg names the extra to install."""
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from mmengine.config import Config

from msdet.utils import config as config_utils
from msdet.utils.cli import run_tool
from msdet.utils.config import check_cfg_options, load_config
from conftest import REPO, load_tool

DEMO_CFG = osp.join(REPO, 'configs/psconv/demo/mask_rcnn_psr50_fpn_demo.py')
TOOLS = sorted(glob.glob(osp.join(REPO, 'tools', '**', '*.py'),
                         recursive=True))


@pytest.mark.parametrize('path', TOOLS, ids=lambda p: osp.relpath(p, REPO))
def test_every_tool_uses_the_entry_point_and_the_installed_msdet(path):
    text = open(path).read()
    assert "if __name__ == '__main__':\n    run_tool(main)\n" in text
    assert 'sys.path' not in text


def failing(exc):
    def main(argv):
        raise exc
    return main


def test_user_error_is_one_message_and_status_1(capsys, monkeypatch):
    monkeypatch.delenv('MSDET_DEBUG', raising=False)
    monkeypatch.setattr(sys, 'argv', ['train.py'])
    with pytest.raises(SystemExit) as exit_:
        run_tool(failing(ValueError('bad value 3; allowed: 1 or 2')), [])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        'train.py: error: ValueError: bad value 3; allowed: 1 or 2',
        '(the traceback: add --debug or set MSDET_DEBUG=1)']
    with pytest.raises(SystemExit) as exit_:  # KeyError: without quotes
        run_tool(failing(KeyError('PSResNett is not in the registry')), [])
    assert 'error: KeyError: PSResNett is not in' in capsys.readouterr().err


def test_debug_shows_the_traceback(monkeypatch):
    seen = []

    def main(argv):
        seen.append(argv)
        raise ValueError('x')

    with pytest.raises(ValueError):
        run_tool(main, ['cfg.py', '--debug'])
    assert seen == [['cfg.py']]  # --debug is not passed on
    monkeypatch.setenv('MSDET_DEBUG', '1')
    with pytest.raises(ValueError):
        run_tool(main, [])


def test_exit_status_of_main(monkeypatch):
    monkeypatch.delenv('MSDET_DEBUG', raising=False)
    for result, code in ((None, 0), (3, 3), (True, 0)):
        with pytest.raises(SystemExit) as exit_:
            run_tool(lambda argv: result, [])
        assert exit_.value.code == code
    with pytest.raises(SystemExit) as exit_:
        run_tool(failing(KeyboardInterrupt()), [])
    assert exit_.value.code == 130


def run(args, cwd, **env):
    env = dict(os.environ, PYTHONPATH=REPO, **env)
    env.pop('MSDET_DEBUG', None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_tool_run_ends_in_one_message(tmp_path):
    """python tools/train.py with a missing config: one line and the hint on
    stderr, status 1 (--debug: test_debug_shows_the_traceback)."""
    out = run([sys.executable, f'{REPO}/tools/train.py', 'nope.py'], tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines()[-2:] == [
        "train.py: error: FileNotFoundError: config 'nope.py' not found.",
        '(the traceback: add --debug or set MSDET_DEBUG=1)']
    assert 'Traceback' not in out.stderr


@pytest.mark.parametrize('option, message', [
    ('train_cfg.max_epoch', r"no key 'train_cfg.max_epoch'; did you mean "
     r"'train_cfg.max_epochs'\?"),
    ('default_hooks.checkpoint.intervall', r"did you mean "
     r"'default_hooks.checkpoint.interval'\?"),
    ('optim_wraper.optimizer.lr', r"did you mean 'optim_wrapper'\?"),
    ('train_dataloader.dataset.pipeline.9.prob', r"'train_dataloader."
     r"dataset.pipeline' has 5 entries \(indices 0-4\)"),
])
def test_cfg_options_typo_names_the_nearest_key(option, message):
    cfg = Config.fromfile(DEMO_CFG)
    with pytest.raises(ValueError, match=rf'--cfg-options {option}: .*'
                       + message):
        check_cfg_options(cfg, {option: 1})


def test_cfg_options_new_keys_and_list_entries_pass():
    cfg = load_config(DEMO_CFG, {
        'env_cfg.dist_cfg.timeout': 60, 'train_cfg.max_epochs': 1,
        'train_dataloader.dataset.pipeline.3.prob': 0.0})
    assert cfg.env_cfg.dist_cfg.timeout == 60
    assert cfg.train_dataloader.dataset.pipeline[3].prob == 0.0


def test_auto_scale_lr_without_config_entry(tmp_path):
    (tmp_path / 'cfg.py').write_text(f'_base_ = {DEMO_CFG!r}\n'
                                     'auto_scale_lr = None\n')
    tool = load_tool('train')
    args = tool.parse_args([str(tmp_path / 'cfg.py'), '--auto-scale-lr'])
    with pytest.raises(ValueError, match=r"--auto-scale-lr: '.*cfg.py' has "
                       r'no auto_scale_lr; add auto_scale_lr = dict\('
                       r'enable=False, base_batch_size=N\) to the config'):
        tool.build_cfg(args)
    args = tool.parse_args([DEMO_CFG, '--auto-scale-lr'])
    assert tool.build_cfg(args).auto_scale_lr.enable is True


def test_seg_config_without_mmseg_names_the_extra(monkeypatch):
    deeplab = osp.join(REPO, 'configs/elastic/demo/deeplabv3_ex50_voc_demo.py')
    monkeypatch.setattr(config_utils, 'mmseg_available', lambda: False)
    with pytest.raises(ModuleNotFoundError, match=r"uses MMSegmentation "
                       r"\(default_scope='mmseg'\), which is not installed: "
                       r"pip install 'msdet\[seg\]'"):
        load_config(deeplab)
    # mmseg:: bases: mmengine's own check fails first
    import mmengine.config.config as mm_config
    monkeypatch.setattr(mm_config, 'is_installed',
                        lambda package: package != 'mmsegmentation')
    with pytest.raises(ModuleNotFoundError, match=r"builds on MMSegmentation "
                       r"\(mmseg:: bases\), which is not installed: pip "
                       r"install 'msdet\[seg\]'"):
        load_config(deeplab)
    load_config(DEMO_CFG)  # detection configs do not need mmseg


FAKE_PYTHON = """#!/bin/sh
echo "$0 $*" > "$(dirname "$0")/../../called"
"""


@pytest.mark.parametrize('script, args', [
    ('dist_train.sh', ['cfg.py', '2']),
    ('dist_test.sh', ['cfg.py', 'ckpt.pth', '2']),
    ('slurm_train.sh', ['part', 'job', 'cfg.py', 'wd']),
])
def test_launchers_use_the_projects_python(tmp_path, script, args):
    """$PYTHON if set, else the checkout's .venv; the checkout is first on
    PYTHONPATH."""
    tools = tmp_path / 'repo/tools'
    tools.mkdir(parents=True)
    for name in (script, 'python_env.sh'):
        shutil.copy(osp.join(REPO, 'tools', name), tools)
    venv = tmp_path / 'repo/.venv/bin'
    venv.mkdir(parents=True)
    (venv / 'python').write_text(FAKE_PYTHON)
    (venv / 'python').chmod(0o755)
    srun = tmp_path / 'bin/srun'  # runs its command
    srun.parent.mkdir()
    srun.write_text('#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift; done\n'
                    'exec "$@"\n')
    srun.chmod(0o755)
    env = dict(os.environ, PATH=f'{srun.parent}:{os.environ["PATH"]}')
    env.pop('PYTHON', None)
    subprocess.run(['bash', str(tools / script)] + args, env=env, check=True,
                   cwd=tmp_path)
    called = (tmp_path / 'repo/called').read_text()
    assert called.startswith(f'{venv}/python ')
    env['PYTHON'] = str(venv / 'python')
    os.remove(tmp_path / 'repo/called')
    env['PYTHONPATH'] = '/elsewhere'
    out = subprocess.run(
        ['bash', '-c', f'source {tools}/python_env.sh; echo "$PYTHON"; '
         'echo "$PYTHONPATH"'], env=env, capture_output=True, text=True)
    assert out.stdout.split() == [str(venv / 'python'),
                                  f'{tmp_path}/repo:/elsewhere']
