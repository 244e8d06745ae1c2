"""setup.py declares the version ranges msdet is tested with (the installed
versions lie in them, tools/install.sh's exact pins too) and makes
MMSegmentation and the ONNX export's packages extras."""
import ast
import os.path as osp
import re
from importlib.metadata import version

from packaging.requirements import Requirement

from conftest import REPO


def declared():
    tree = ast.parse(open(osp.join(REPO, 'setup.py')).read())
    values = {t.id: ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) for t in node.targets}
    return values['INSTALL_REQUIRES'], values['EXTRAS_REQUIRE']


def test_ranges_hold_the_installed_and_pinned_versions():
    install, extras = declared()
    assert list(extras) == ['seg', 'deploy']
    reqs = [Requirement(r)
            for r in install + extras['seg'] + extras['deploy']]
    assert {r.name for r in reqs} == {'mmengine', 'mmdet', 'mmsegmentation',
                                      'pycocotools', 'onnx', 'onnxruntime'}
    for extra in ('mmsegmentation', 'onnx'):
        assert extra not in ' '.join(install)  # extras only
    pins = dict(re.findall(
        r'\b(mmengine|mmdet|mmsegmentation|onnx|onnxruntime)==([\d.]+)',
        open(osp.join(REPO, 'tools/install.sh')).read()))
    assert set(pins) == {'mmengine', 'mmdet', 'mmsegmentation', 'onnx',
                         'onnxruntime'}
    for req in reqs:
        if not req.specifier:
            continue
        # a range from the tested version to the next minor release
        assert req.specifier.contains(version(req.name)), req
        assert req.specifier.contains(pins[req.name]), req
        low = next(s.version for s in req.specifier if s.operator == '>=')
        assert low == pins[req.name] == version(req.name), req
