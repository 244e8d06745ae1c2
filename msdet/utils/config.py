"""Config loading, checks and arguments shared by msdet's command-line tools."""
import difflib
import importlib
import importlib.util
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..ops.switchable import check_sync_bn
from .checkpoint import check_checkpoint_file
from .dist import (check_cuda_only_settings, check_wrapper_settings,
                   init_distributed)

SEG_EXTRA = ("pip install 'msdet[seg]' (MMSegmentation 1.2, "
             "mmsegmentation>=1.2.2,<1.3)")


def parse_tool_args(parser, argv=None):
    """Add the arguments every runner-based tool takes as mmdet's do
    (``--cfg-options``, ``--launcher``, ``--local_rank``), parse ``argv``
    and export ``LOCAL_RANK`` for the launcher."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. '
                        'train_cfg.max_epochs=1')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def mmseg_available():
    return importlib.util.find_spec('mmseg') is not None


def _uses_mmseg(cfg):
    return cfg.get('default_scope') == 'mmseg' or \
        'mmseg.' in str(cfg.get('custom_imports', ''))


def check_cfg_options(cfg, options):
    """Refuse an override that is a typo: a key the config lacks while a
    close one exists at that level, naming the nearest valid key. New keys
    with no close match are allowed (e.g. ``env_cfg.dist_cfg.timeout``)."""
    tree = cfg.to_dict()
    for key in options or {}:
        node, path = tree, []
        for part in key.split('.'):
            if isinstance(node, (list, tuple)) and part.isdigit():
                if int(part) >= len(node):
                    raise ValueError(
                        f'--cfg-options {key}: {".".join(path)!r} has '
                        f'{len(node)} entries (indices 0-{len(node) - 1}).')
                node = node[int(part)]
            elif isinstance(node, dict):
                if part not in node:
                    close = difflib.get_close_matches(
                        part, [str(k) for k in node], n=1, cutoff=0.8)
                    if close:
                        where = '.'.join(path + [close[0]])
                        raise ValueError(
                            f'--cfg-options {key}: the config has no key '
                            f'{".".join(path + [part])!r}; did you mean '
                            f'{where!r}?')
                    break
                node = node[part]
            else:
                break
            path.append(part)


def load_config(path, cfg_options=None, work_dir=None, launcher='none'):
    """Load ``path`` the way mmdet's tools do: CLI overrides (checked for
    typos), then work_dir from the CLI, the config, or
    ``work_dirs/<config name>``. A config of MMSegmentation (``mmseg::``
    bases, ``default_scope='mmseg'``) without mmseg installed is one error
    naming the extra to install."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path!r} not found.')
    try:
        cfg = Config.fromfile(path)
    except ModuleNotFoundError as err:
        if 'mmseg' not in str(err):
            raise
        raise ModuleNotFoundError(
            f'config {path!r} builds on MMSegmentation (mmseg:: bases), '
            f'which is not installed: {SEG_EXTRA}.') from None
    if _uses_mmseg(cfg) and not mmseg_available():
        raise ModuleNotFoundError(
            f'config {path!r} uses MMSegmentation (default_scope='
            f"'mmseg'), which is not installed: {SEG_EXTRA}.")
    cfg.launcher = launcher
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg


def build_model(cfg, checkpoint):
    """``cfg.model`` (built in its scope's registry) on CPU in eval mode,
    SyncBN reverted to BN, with every tensor from ``checkpoint``: a
    checkpoint that is not a complete file or does not fit the model
    (missing or mis-shaped tensors, ``CheckpointFitHook``'s check) is one
    error. The backbone's ``init_cfg`` is not loaded (the checkpoint has
    every weight)."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.runner.checkpoint import _load_checkpoint_to_model

    from ..engine.checkpoint_hooks import CheckpointFitHook
    from .checkpoint import load_local_checkpoint
    check_checkpoint_file(checkpoint)
    scope = cfg.get('default_scope', 'mmdet')
    importlib.import_module(f'{scope}.utils').register_all_modules(True)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    cfg.model.pop('pretrained', None)
    cfg.model.backbone.init_cfg = None
    model = revert_sync_batchnorm(registry.build(cfg.model))
    state = load_local_checkpoint(checkpoint, 'cpu')
    CheckpointFitHook._check_tensors(model, state, checkpoint,
                                     heads_may_differ=False)
    _load_checkpoint_to_model(model, state, logger='silent')
    model.eval()
    return model


def build_runner(cfg):
    """The config's ``runner_type`` if it names one, else mmengine's Runner.
    First refused: ``sync_bn`` for a model with width-sliced BNs
    (:func:`msdet.ops.switchable.check_sync_bn`), settings this machine
    cannot run (CUDA-only, see
    :func:`msdet.utils.dist.check_cuda_only_settings`), a
    ``find_unused_parameters`` mmengine would ignore
    (:func:`msdet.utils.dist.check_wrapper_settings`) and a ``load_from``
    that is not a complete checkpoint file; then the process group of
    ``cfg.launcher`` is started (:func:`msdet.utils.dist.init_distributed`,
    with ``env_cfg.dist_cfg``)."""
    check_sync_bn(cfg)
    check_cuda_only_settings(cfg)
    check_wrapper_settings(cfg)
    if cfg.get('load_from'):
        check_checkpoint_file(cfg.load_from)
    init_distributed(cfg.get('launcher', 'none'), cfg.get('env_cfg'))
    return (RUNNERS.build(cfg) if 'runner_type' in cfg else
            Runner.from_cfg(cfg))
