"""Deterministic synthetic PASCAL VOC-format semantic-segmentation dataset.

Images show filled shapes on a low-contrast textured background; each
foreground class has its own shape and base colour, and object sizes span
a wide range (a few pixels to a third of the image), so images differ in
scale content. Labels use PASCAL VOC's class ids and colour palette: class
``k`` of the dataset is VOC class ``k`` (0 = background, then
``'aeroplane'``, ``'bicycle'``, ...), so an mmseg config selects them with
``metainfo=dict(classes=VOC_CLASSES[:num_classes + 1])``. As in VOC,
object contours are marked 255 (ignored by mmseg's IoUMetric). Layout,
as mmseg's ``PascalVOCDataset`` reads it::

    out_dir/VOC2012/JPEGImages/train_000000.jpg ...
    out_dir/VOC2012/SegmentationClass/train_000000.png ...  (palette PNG)
    out_dir/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt

Only numpy, Pillow and the standard library are used; nothing is
downloaded. The same arguments always give the same files.
"""
import math
import os

import numpy as np
from PIL import Image, ImageDraw

from ..utils.fileio import atomic_open

VOC_CLASSES = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus',
    'car', 'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
    'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')
IGNORE_INDEX = 255
SHAPES = ('circle', 'square', 'triangle', 'hexagon', 'star')
MIN_IMAGE_SIDE = 32
JPEG_QUALITY = 95

_SPLITS = (('train', 0), ('val', 1))
_MIN_RADIUS = 3.0        # px; smallest object radius
_RADIUS_RANGE = (0.04, 0.33)  # object radius as a fraction of the short side
_COLOR_JITTER = 15
_NOISE = 8


def voc_palette():
    """The 256-entry PASCAL VOC colour map (bit-interleaved class ids)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def class_colors(num_classes):
    """Base RGB image colour of foreground classes 1..num_classes: hues
    spread evenly, alternating saturation so neighbours differ more."""
    colors = []
    for k in range(num_classes):
        hue = k / num_classes
        sat = 0.85 if k % 2 == 0 else 0.55
        rgb = [_hsv_channel(hue, sat, n) for n in (5, 3, 1)]
        colors.append(tuple(int(round(225 * v)) for v in rgb))
    return colors


def _hsv_channel(hue, sat, n):
    k = (n + hue * 6) % 6
    return 1 - sat * max(0.0, min(k, 4 - k, 1))


def single_class_miou(class_pixels):
    """Best mIoU (%) of predicting one class everywhere, as mmseg's IoUMetric
    computes it: only classes with pixels (or predictions) count."""
    pixels = np.asarray(class_pixels, dtype=np.float64)
    present = pixels > 0
    if not present.any():
        raise ValueError('class_pixels has no labelled pixel.')
    return float(100 * pixels.max() / pixels.sum() / present.sum())


def _check_int(name, value, minimum, maximum=None):
    allowed = f'an integer >= {minimum}' if maximum is None else \
        f'an integer in {minimum}..{maximum}'
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f'{name}={value!r}; allowed: {allowed}.')


def _polygon(shape, cx, cy, radius, angle):
    """Vertices of ``shape`` centred at (cx, cy)."""
    if shape == 'circle':
        n, radii = 32, [radius]
    elif shape == 'square':
        n, radii = 4, [radius]
    elif shape == 'triangle':
        n, radii = 3, [radius]
    elif shape == 'hexagon':
        n, radii = 6, [radius]
    else:  # star: alternate outer and inner radius
        n, radii = 10, [radius, 0.45 * radius]
    ang = angle + np.arange(n) * (2 * math.pi / n)
    r = np.array([radii[i % len(radii)] for i in range(n)])
    return [(float(cx + ri * math.cos(a)), float(cy + ri * math.sin(a)))
            for ri, a in zip(r, ang)]


def _background(rng, height, width):
    """Low-contrast textured grey background (float32, HxWx3)."""
    cells = 6
    coarse = rng.uniform(-1, 1, size=(cells + 1, cells + 1, 3))
    ty = np.linspace(0, cells, height)
    tx = np.linspace(0, cells, width)
    iy = np.minimum(ty.astype(int), cells - 1)
    ix = np.minimum(tx.astype(int), cells - 1)
    fy = (ty - iy)[:, None, None]
    fx = (tx - ix)[None, :, None]
    # Separable bilinear upsampling of the coarse grid.
    rows = coarse[iy] * (1 - fy) + coarse[iy + 1] * fy
    tex = rows[:, ix] * (1 - fx) + rows[:, ix + 1] * fx
    grey = rng.uniform(95, 130) + rng.uniform(-6, 6, size=3)
    return (grey + 16.0 * tex).astype(np.float32)


def _render(rng, width, height, num_classes, min_objects, max_objects,
            boundary):
    """One image and its label map (uint8 arrays)."""
    side = min(width, height)
    r_lo = max(_MIN_RADIUS, _RADIUS_RANGE[0] * side)
    r_hi = max(r_lo, _RADIUS_RANGE[1] * side)
    num = int(rng.integers(min_objects, max_objects + 1))
    canvas = Image.new('I', (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    classes = []
    # Larger objects first so small ones stay visible on top.
    radii = sorted(np.exp(rng.uniform(math.log(r_lo), math.log(r_hi),
                                      size=num)), reverse=True)
    for k, radius in enumerate(radii):
        cls = int(rng.integers(1, num_classes + 1))
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        angle = rng.uniform(0, 2 * math.pi)
        poly = _polygon(SHAPES[(cls - 1) % len(SHAPES)], cx, cy, radius,
                        angle)
        draw.polygon(poly, fill=k + 1)
        classes.append(cls)
    objects = np.asarray(canvas, dtype=np.int32)
    lut = np.array([0] + classes, dtype=np.uint8)
    label = lut[objects]

    img = _background(rng, height, width)
    colors = class_colors(num_classes)
    for k, cls in enumerate(classes):
        jitter = rng.integers(-_COLOR_JITTER, _COLOR_JITTER + 1, size=3)
        img[objects == k + 1] = np.array(colors[cls - 1]) + jitter
    img += rng.integers(-_NOISE, _NOISE + 1, size=img.shape)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)

    if boundary:
        # VOC-style ignore band: pixels within `boundary` px of a class edge.
        pad = np.pad(label, boundary, mode='edge')
        edge = np.zeros_like(label, dtype=bool)
        for dy in range(-boundary, boundary + 1):
            for dx in range(-boundary, boundary + 1):
                edge |= pad[boundary + dy:boundary + dy + height,
                            boundary + dx:boundary + dx + width] != label
        label = np.where(edge, IGNORE_INDEX, label).astype(np.uint8)
    return img, label


def _save_label(label, path, palette):
    im = Image.frombytes('P', (label.shape[1], label.shape[0]),
                         np.ascontiguousarray(label).tobytes())
    im.putpalette(palette.reshape(-1).tolist())
    with atomic_open(path, 'wb') as f:
        im.save(f, format='PNG')


def make_voc_dataset(out_dir, num_train=64, num_val=16, image_size=(160, 120),
                     num_classes=4, seed=0, min_objects=2, max_objects=8,
                     boundary=1):
    """Generate the dataset under ``out_dir`` (a VOCdevkit directory).

    Args:
        out_dir (str): the dataset goes to ``out_dir/VOC2012``.
        num_train, num_val (int): images per split (>= 1).
        image_size (tuple[int, int]): (width, height), each >= 32.
        num_classes (int): foreground classes, 1..20 (VOC ids 1..n).
        seed (int): >= 0. Image ``i`` of a split depends only on
            (seed, split, i), not on the number of images.
        min_objects, max_objects (int): objects per image (1 <= min <= max).
        boundary (int): half-width in px of the 255 band on class edges;
            0 for none.

    Returns:
        dict: ``data_root`` (``out_dir/VOC2012``), ``classes`` (VOC names
        of ids 0..num_classes), ``image_size``, ``seed`` and, per split
        (``'train'``, ``'val'``): ``ann_file``, ``num_images`` and
        ``class_pixels`` (labelled pixels per class id 0..num_classes).

    Raises:
        ValueError: on any argument outside the ranges above.
    """
    _check_int('num_train', num_train, 1)
    _check_int('num_val', num_val, 1)
    if not (isinstance(image_size, (tuple, list)) and len(image_size) == 2):
        raise ValueError(f'image_size={image_size!r}; allowed: (width, '
                         f'height), each an integer >= {MIN_IMAGE_SIDE}.')
    for name, v in zip(('image_size[0] (width)', 'image_size[1] (height)'),
                       image_size):
        _check_int(name, v, MIN_IMAGE_SIDE)
    _check_int('num_classes', num_classes, 1, len(VOC_CLASSES) - 1)
    _check_int('seed', seed, 0)
    _check_int('min_objects', min_objects, 1)
    _check_int('max_objects', max_objects, min_objects)
    _check_int('boundary', boundary, 0)
    width, height = (int(v) for v in image_size)
    root = os.path.join(os.fspath(out_dir), 'VOC2012')
    split_dir = os.path.join(root, 'ImageSets', 'Segmentation')
    palette = voc_palette()
    summary = {'data_root': root,
               'classes': list(VOC_CLASSES[:num_classes + 1]),
               'image_size': (width, height), 'seed': int(seed)}
    all_ids = []
    for split, code in _SPLITS:
        num = int(num_train if split == 'train' else num_val)
        ids, pixels = [], np.zeros(num_classes + 1, dtype=np.int64)
        for index in range(num):
            rng = np.random.default_rng(
                np.random.SeedSequence([int(seed), code, index]))
            img, label = _render(rng, width, height, int(num_classes),
                                 int(min_objects), int(max_objects),
                                 int(boundary))
            name = f'{split}_{index:06d}'
            with atomic_open(os.path.join(root, 'JPEGImages', name + '.jpg'),
                             'wb') as f:
                Image.fromarray(img).save(f, format='JPEG',
                                          quality=JPEG_QUALITY)
            _save_label(label, os.path.join(root, 'SegmentationClass',
                                            name + '.png'), palette)
            pixels += np.bincount(label[label != IGNORE_INDEX],
                                  minlength=num_classes + 1)
            ids.append(name)
        ann_file = os.path.join(split_dir, f'{split}.txt')
        with atomic_open(ann_file) as f:
            f.write(''.join(i + '\n' for i in ids))
        all_ids += ids
        summary[split] = {'ann_file': ann_file, 'num_images': num,
                          'class_pixels': pixels.tolist()}
    with atomic_open(os.path.join(split_dir, 'trainval.txt')) as f:
        f.write(''.join(i + '\n' for i in all_ids))
    return summary
