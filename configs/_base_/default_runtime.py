# mmdet's runtime settings (hooks, logging, visualisation, environment).
# Every msdet COCO config inherits them through this file, so a runtime
# setting they all share (e.g. a hook) is written here once.
_base_ = 'mmdet::_base_/default_runtime.py'
