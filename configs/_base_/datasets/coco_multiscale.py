# The embedded multi-scale COCO-format dataset (msdet.datasets.
# multiscale_coco): 400 train / 100 val images of 256 x 256, six classes
# that differ only in a fine marking, object sizes from 6 px to 75% of the
# image, clusters of small objects, clutter and occlusion, polygon masks
# (python tools/make_coco_multiscale.py data/coco_multiscale). Loading,
# pipelines and evaluation (bbox and segm AP) are the CPU demos'.
_base_ = './coco_demo_instance.py'

data_root = 'data/coco_multiscale/'
metainfo = dict(
    classes=('dot', 'ring', 'cross', 'bar', 'stripes', 'checker'),
    palette=[(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
             (245, 130, 48), (145, 30, 180)])
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
