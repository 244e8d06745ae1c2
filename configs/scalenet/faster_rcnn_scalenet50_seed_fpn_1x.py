# Seed network of the data-driven neuron allocation (ScaleNet paper 3.2,
# algorithm 1) in Faster R-CNN: ScaleNet-50 with C = 64 * 2**i neurons for
# each of the 4 scales in every SA block of stage i (the 3x3 conv's width
# per scale), otherwise faster_rcnn_scalenet50_fpn_1x.py.
# 1. train the seed: python tools/train.py CONFIG (this file)
# 2. allocate: python tools/allocate_neurons.py CONFIG \
#        work_dirs/faster_rcnn_scalenet50_seed_fpn_1x/epoch_12.pth \
#        --out scalenet50_coco.json
# 3. retrain from scratch (paper: "retrain the new network"): this config
#    with --cfg-options model.backbone.structure=scalenet50_coco.json
# The paper trains the seed on ImageNet; no ImageNet seed weights exist to
# bring, so this seed trains from scratch (BN statistics and every stage
# train). If you have ImageNet-trained seed weights, set init_cfg to them.
# SA blocks upsample with nearest, as in the paper (3.1; resample='nearest':
# no release weights involved).
_base_ = './faster_rcnn_scalenet50_fpn_1x.py'

model = dict(
    backbone=dict(
        structure=dict(seed=64),
        resample='nearest',
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None))
