# mmdet's runtime settings (hooks, logging, visualisation, environment).
# Every msdet COCO config inherits them through this file, so a runtime
# setting they all share (e.g. a hook) is written here once.
_base_ = 'mmdet::_base_/default_runtime.py'

# msdet's runtime components: atomic checkpoint files (last_checkpoint too),
# a checkpoint that does not fit the model refused before training/testing,
# every rank's RNG states in checkpoints (exact resume), DDP that also runs
# without CUDA (gloo, no device ids).
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook'),
    checkpoint_fit=dict(type='CheckpointFitHook'),
    rng_state=dict(type='RNGStateHook'))
model_wrapper_cfg = dict(type='CPUCompatibleDDP')
