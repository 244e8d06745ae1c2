from setuptools import find_packages, setup

setup(
    name='msdet',
    version='0.1.0',
    description='Multi-scale CNN backbones (PSConv, ScaleNet, ELASTIC, '
    'MutualNet, Resizable) for MMDetection 3.x and MMSegmentation 1.x',
    packages=find_packages(include=['msdet', 'msdet.*']),
    python_requires='>=3.8',
    install_requires=[
        # torch and mmcv (with ops) come from tools/install.sh: pip must never
        # pull a CUDA torch or build mmcv without its ops on its own.
        'mmengine==0.10.7', 'mmdet==3.3.0',
        'mmsegmentation==1.2.2', 'pycocotools'
    ],
)
