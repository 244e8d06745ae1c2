from setuptools import find_packages, setup

# The versions msdet is tested with (tests/test_packaging.py checks that the
# installed ones lie in these ranges); upper bounds at the next minor
# release, whose private interfaces msdet's hooks and loops build on may
# change. torch and mmcv (with its compiled ops) are not declared: pip must
# never pull a CUDA torch or build mmcv without its ops on its own;
# tools/install.sh installs both with the exact versions CI tests.
INSTALL_REQUIRES = ['mmengine>=0.10.7,<0.11', 'mmdet>=3.3.0,<3.4',
                    'pycocotools']
# deploy: ONNX export and its check in onnxruntime
# (tools/deployment/export_onnx.py)
EXTRAS_REQUIRE = {
    'seg': ['mmsegmentation>=1.2.2,<1.3'],
    'deploy': ['onnx>=1.23.2,<1.24', 'onnxruntime>=1.32.0,<1.33'],
}

setup(
    name='msdet',
    version='0.1.0',
    description='Multi-scale CNN backbones (PSConv, ScaleNet, ELASTIC, '
    'MutualNet, Resizable) for MMDetection 3.x and MMSegmentation 1.x',
    packages=find_packages(include=['msdet', 'msdet.*']),
    python_requires='>=3.8',
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
