"""Config loading and arguments shared by msdet's command-line tools."""
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .dist import check_cuda_only_settings


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


def load_config(path, cfg_options=None, work_dir=None, launcher='none'):
    """Load ``path`` the way mmdet's tools do: CLI overrides, then work_dir
    from the CLI, the config, or ``work_dirs/<config name>``."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path!r} not found.')
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg


def build_runner(cfg):
    """The config's ``runner_type`` if it names one, else mmengine's Runner;
    settings this machine cannot run (CUDA-only, see
    :func:`msdet.utils.dist.check_cuda_only_settings`) are refused first."""
    check_cuda_only_settings(cfg)
    return (RUNNERS.build(cfg) if 'runner_type' in cfg else
            Runner.from_cfg(cfg))
