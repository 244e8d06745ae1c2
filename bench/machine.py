"""What a run was measured on."""
import datetime
import platform

import torch

from .timing import cpu_threads


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device):
    info = dict(
        date=datetime.datetime.now().astimezone().isoformat(
            timespec='seconds'),
        device=str(device),
        cpu=cpu_model(),
        cores=cpu_threads(),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        onednn=torch.backends.mkldnn.is_available(),
        python=platform.python_version())
    if torch.device(device).type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
        info['cuda'] = torch.version.cuda
    return info


def one_line(info):
    gpu = f", {info['gpu']} (CUDA {info['cuda']})" if 'gpu' in info else ''
    return (f"{info['cpu']}, {info['cores']} cores ({info['threads']} "
            f"threads){gpu}, torch {info['torch']}, {info['date'][:10]}")
