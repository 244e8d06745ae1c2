# mmdet's 1x schedule: 12 epochs, SGD lr 0.02 for 16 images (8 GPUs x 2),
# linear warm-up, LR steps at epochs 8 and 11. Every msdet COCO config
# inherits its training loops through this file (the CPU demo schedules
# too), so a loop setting they all share is written here once.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'
