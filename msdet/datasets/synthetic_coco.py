"""Deterministic synthetic COCO-format instance-segmentation dataset.

Images show non-overlapping filled shapes (circle / square / triangle) on a
low-contrast textured background; every class has its own base colour. The
output uses the COCO 2017 layout, so configs only need a different
``data_root`` to switch to real COCO::

    out_dir/annotations/instances_{train,val}2017.json
    out_dir/{train,val}2017/000000000001.png ...

Only numpy, Pillow and the standard library are used; nothing is downloaded.

Rasterisation note: Pillow truncates polygon vertices to integers and fills
pixels whose centres lie inside or on the polygon (integer coordinates are
pixel centres), while COCO polygons live in pixel-corner coordinates. Each
shape is therefore snapped to integer vertices, drawn with
``ImageDraw.polygon`` and stored as that polygon shifted by +0.5 px and
dilated by ``_DILATE`` px, which makes ``pycocotools`` masks agree with the
drawn pixels up to a few boundary pixels (mask IoU >= 0.94 for small
objects, >= 0.97 for medium and large ones with the defaults).
"""
import math
import os

import numpy as np
from PIL import Image, ImageDraw

from ..evaluation.buckets import BUCKETS, area_bucket
from ..utils.fileio import atomic_open, dump_json

CLASSES = ('circle', 'square', 'triangle')
#: Base RGB colour per class (each object gets up to +-_COLOR_JITTER on top).
CLASS_COLORS = {
    'circle': (220, 60, 60),
    'square': (55, 200, 75),
    'triangle': (70, 90, 230),
}
MIN_IMAGE_SIZE = 128

_SPLITS = (('train', 0), ('val', 1))
# Target polygon areas per bucket (kept well inside the COCO thresholds).
_AREA_RANGES = {'small': (225.0, 800.0), 'medium': (1600.0, 7000.0),
                'large': (9800.0, 12500.0)}
_CIRCLE_VERTICES = 40
_MAX_ROTATION = math.radians(15)
_BORDER = 2          # min distance (px) from objects to the image border
_MARGIN = 4          # min gap (px) between the bounding boxes of two objects
_ATTEMPTS = 200      # placement attempts per (object, category)
_DILATE = 0.3        # outward offset of the stored polygon, see module doc
_COLOR_JITTER = 18   # per-object, per-channel uniform colour jitter
_NOISE = 8           # per-pixel, per-channel uniform noise amplitude
_INFO = {
    'description': 'msdet synthetic shapes (deterministic, generated locally)',
    'version': '1.0',
    'year': 2024,
    'contributor': 'msdet',
    'url': '',
    'date_created': '1970-01-01',
}


def _check_int(name, value, minimum, extra=''):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f'{name} must be an integer >= {minimum}{extra}, '
                         f'got {value!r}')
    if value < minimum:
        raise ValueError(f'{name} must be >= {minimum}{extra}, got {value!r}')


def _shoelace(pts):
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _dilate(pts, d):
    """Offset every edge of a simple polygon outwards by ``d``."""
    if _shoelace(pts) < 0:
        pts = pts[::-1]
    edge = np.roll(pts, -1, axis=0) - pts
    normal = np.stack([edge[:, 1], -edge[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    prev = np.roll(normal, 1, axis=0)
    denom = 1.0 + np.sum(prev * normal, axis=1, keepdims=True)
    return pts + d * (prev + normal) / denom


def _template(rng, category, bucket, shrink):
    """Integer-vertex shape centred near the origin, or None if degenerate."""
    lo, hi = _AREA_RANGES[bucket]
    area = lo + (hi - lo) * rng.random() * shrink
    rot = rng.uniform(-_MAX_ROTATION, _MAX_ROTATION) * shrink
    if category == 'circle':
        radius = math.sqrt(area / math.pi)
        ang = rng.uniform(0, 2 * np.pi) + np.arange(_CIRCLE_VERTICES) * (
            2 * np.pi / _CIRCLE_VERTICES)
    elif category == 'square':
        radius = math.sqrt(area) / math.sqrt(2)
        ang = rot + np.pi / 4 + np.arange(4) * (np.pi / 2)
    elif category == 'triangle':
        side = math.sqrt(4 * area / math.sqrt(3))
        radius = side / math.sqrt(3)
        ang = rot - np.pi / 2 + np.arange(3) * (2 * np.pi / 3)
    else:  # pragma: no cover - guarded by CLASSES
        raise ValueError(f'unknown category {category!r}')
    pts = np.round(radius * np.stack([np.cos(ang), np.sin(ang)], axis=1))
    pts = pts[np.any(pts != np.roll(pts, 1, axis=0), axis=1)]
    if len(pts) < 3 or abs(_shoelace(pts)) < 1:
        return None
    return pts


def _stored_polygon(pts):
    """COCO polygon (corner coordinates) for integer vertices ``pts``."""
    return np.round(_dilate(pts.astype(np.float64), _DILATE) + 0.5, 2)


def _place(rng, size, category, bucket, boxes):
    """Rejection-sample a non-overlapping placement; None if nothing fits."""
    for attempt in range(_ATTEMPTS):
        shrink = 1.0 - attempt / _ATTEMPTS
        tpl = _template(rng, category, bucket, shrink)
        if tpl is None:
            continue
        poly = _stored_polygon(tpl)
        if area_bucket(abs(_shoelace(poly))) != bucket:
            continue
        (x0, y0) = tpl.min(axis=0).astype(int)
        (x1, y1) = tpl.max(axis=0).astype(int)
        lo_x, hi_x = _BORDER - x0, size - 1 - _BORDER - x1
        lo_y, hi_y = _BORDER - y0, size - 1 - _BORDER - y1
        if lo_x > hi_x or lo_y > hi_y:
            continue
        dx = int(rng.integers(lo_x, hi_x + 1))
        dy = int(rng.integers(lo_y, hi_y + 1))
        box = (x0 + dx, y0 + dy, x1 + dx, y1 + dy)  # inclusive pixel extent
        if any(box[0] <= b[2] + _MARGIN and b[0] <= box[2] + _MARGIN and
               box[1] <= b[3] + _MARGIN and b[1] <= box[3] + _MARGIN
               for b in boxes):
            continue
        shift = np.array([dx, dy])
        return tpl + shift, poly + shift, box
    return None


def _plan_buckets(index, num_objects, rng):
    """Size buckets of one image: a small object, a medium one in 3 of 4
    images and a large one in every other image (as slots allow)."""
    must = ['small']
    if index % 2 == 0:
        must.append('large')
    if index % 4 != 3:
        must.append('medium')
    if num_objects < len(must):
        # Too few slots: keep the small object (unless there is only one
        # slot) and rotate the rest with the index so a split still gets all.
        keep = must[:1] if num_objects > 1 else []
        rest = must[len(keep):]
        start = index % len(rest)
        must = (keep + rest[start:] + rest[:start])[:num_objects]
    extra = [('small', 'medium')[int(rng.integers(2))]
             for _ in range(num_objects - len(must))]
    return must + extra


def _plan_categories(index, num_objects, rng):
    """Categories of one image: a permutation first (image ``index`` always
    contains class ``index % C``), then uniform draws."""
    num_cls = len(CLASSES)
    perm = [int(c) for c in rng.permutation(num_cls)]
    first = index % num_cls
    perm.remove(first)
    perm.insert(0, first)
    cats = perm + [int(rng.integers(num_cls))
                   for _ in range(max(0, num_objects - num_cls))]
    cats = cats[:num_objects]
    return [cats[int(i)] for i in rng.permutation(num_objects)]


def _background(rng, size):
    """Low-contrast textured grey background (float32, HxWx3)."""
    grey = rng.uniform(100, 125)
    tint = rng.uniform(-6, 6, size=3)
    cells = 8
    coarse = rng.uniform(-1, 1, size=(cells + 1, cells + 1, 3))
    t = np.linspace(0, cells, size)
    i0 = np.minimum(t.astype(int), cells - 1)
    f = (t - i0)[:, None]
    # Separable bilinear upsampling of the coarse grid.
    rows = coarse[i0] * (1 - f)[:, :, None] + coarse[i0 + 1] * f[:, :, None]
    tex = (rows[:, i0] * (1 - f)[None, :, :] +
           rows[:, i0 + 1] * f[None, :, :])
    return (grey + tint + 14.0 * tex).astype(np.float32)


def _render_image(rng, index, size, min_objects, max_objects):
    """Render one image; returns (uint8 HxWx3 array, objects, skipped)."""
    num_objects = int(rng.integers(min_objects, max_objects + 1))
    buckets = _plan_buckets(index, num_objects, rng)
    cats = _plan_categories(index, num_objects, rng)
    order = sorted(range(num_objects),
                   key=lambda k: -BUCKETS.index(buckets[k]))  # big first
    boxes, objects, skipped = [], [], 0
    for k in order:
        tried = [cats[k]] + [c for c in range(len(CLASSES)) if c != cats[k]]
        for cat in tried:  # other classes only if this one cannot fit
            placed = _place(rng, size, CLASSES[cat], buckets[k], boxes)
            if placed is not None:
                break
        if placed is None:
            skipped += 1
            continue
        drawn, poly, box = placed
        boxes.append(box)
        objects.append((cat, drawn, poly))

    labels = Image.new('L', (size, size), 0)
    draw = ImageDraw.Draw(labels)
    for k, (_, drawn, _) in enumerate(objects):
        draw.polygon([(int(x), int(y)) for x, y in drawn], fill=k + 1)
    labels = np.asarray(labels)

    img = _background(rng, size)
    for k, (cat, _, _) in enumerate(objects):
        base = np.array(CLASS_COLORS[CLASSES[cat]], dtype=np.float32)
        color = base + rng.integers(-_COLOR_JITTER, _COLOR_JITTER + 1, size=3)
        img[labels == k + 1] = color
    img += rng.integers(-_NOISE, _NOISE + 1, size=img.shape)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return img, objects, skipped


def write_split(out_dir, split, split_code, num_images, size, seed, render,
                classes, info):
    """Render and write one split in the COCO 2017 layout.

    ``render(rng, index)`` returns ``(uint8 HxWx3 image, annotations,
    skipped)``: the annotations' fields after ``id`` and ``image_id``. Image
    ``index`` uses the generator seeded with ``(seed, split_code, index)``,
    so it does not depend on the number of images. PNGs and the JSON are
    written atomically. Returns ``(ann_file, img_dir, coco dict, skipped)``.
    """
    img_dir = os.path.join(out_dir, f'{split}2017')
    ann_file = os.path.join(out_dir, 'annotations',
                            f'instances_{split}2017.json')
    os.makedirs(img_dir, exist_ok=True)
    images, annotations, skipped = [], [], 0
    for index in range(num_images):
        rng = np.random.default_rng(
            np.random.SeedSequence([seed, split_code, index]))
        img, anns, n_skip = render(rng, index)
        skipped += n_skip
        image_id = index + 1
        file_name = f'{image_id:012d}.png'
        with atomic_open(os.path.join(img_dir, file_name), 'wb') as f:
            Image.fromarray(img, mode='RGB').save(f, format='PNG')
        images.append({'id': image_id, 'file_name': file_name,
                       'width': size, 'height': size})
        for ann in anns:
            annotations.append(dict(id=len(annotations) + 1,
                                    image_id=image_id, **ann))
    coco = {
        'info': dict(info),
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': [{'id': i + 1, 'name': name, 'supercategory': 'shape'}
                       for i, name in enumerate(classes)],
    }
    dump_json(coco, ann_file)
    return ann_file, img_dir, coco, skipped


def _annotations(objects):
    """COCO fields of the placed ``(category, drawn, polygon)`` objects."""
    out = []
    for cat, _, poly in objects:
        (x0, y0), (x1, y1) = poly.min(axis=0), poly.max(axis=0)
        out.append({
            'category_id': cat + 1,
            'segmentation': [[float(v) for v in poly.reshape(-1)]],
            'area': round(abs(_shoelace(poly)), 2),
            'bbox': [float(x0), float(y0), round(float(x1 - x0), 2),
                     round(float(y1 - y0), 2)],
            'iscrowd': 0,
        })
    return out


def _make_split(out_dir, split, split_code, num_images, size, seed,
                min_objects, max_objects):
    def render(rng, index):
        img, objects, skipped = _render_image(rng, index, size, min_objects,
                                              max_objects)
        return img, _annotations(objects), skipped

    ann_file, img_dir, coco, skipped = write_split(
        out_dir, split, split_code, num_images, size, seed, render, CLASSES,
        _INFO)
    buckets = dict.fromkeys(BUCKETS, 0)
    per_cat = dict.fromkeys(CLASSES, 0)
    for ann in coco['annotations']:
        buckets[area_bucket(ann['area'])] += 1
        per_cat[CLASSES[ann['category_id'] - 1]] += 1
    return {
        'ann_file': ann_file,
        'img_dir': img_dir,
        'num_images': len(coco['images']),
        'num_annotations': len(coco['annotations']),
        'buckets': buckets,
        'per_category': per_cat,
        'skipped_objects': skipped,
    }


def make_coco_dataset(out_dir, num_train=160, num_val=40, image_size=256,
                      seed=0, min_objects=2, max_objects=5):
    """Generate the dataset under ``out_dir`` and return summary stats.

    The same arguments always give byte-identical JSON and PNG files.
    Objects that cannot be placed without overlap are skipped (counted in
    ``skipped_objects``); this does not happen with the defaults.

    Returns a dict with ``out_dir``, ``image_size``, ``seed``, ``classes``
    and, per split (``'train'``, ``'val'``): ``ann_file``, ``img_dir``,
    ``num_images``, ``num_annotations``, ``buckets`` (objects per COCO area
    bucket), ``per_category`` and ``skipped_objects``.

    Raises:
        ValueError: on a non-positive image count, ``image_size`` < 128,
            ``min_objects`` < 1, ``min_objects`` > ``max_objects`` or a
            negative ``seed``.
    """
    _check_int('num_train', num_train, 1)
    _check_int('num_val', num_val, 1)
    _check_int('image_size', image_size, MIN_IMAGE_SIZE,
               ' (a large object needs area > 96**2 px)')
    _check_int('seed', seed, 0)
    _check_int('min_objects', min_objects, 1)
    _check_int('max_objects', max_objects, 1)
    if min_objects > max_objects:
        raise ValueError(f'min_objects ({min_objects}) must be <= '
                         f'max_objects ({max_objects})')
    out_dir = os.fspath(out_dir)
    os.makedirs(os.path.join(out_dir, 'annotations'), exist_ok=True)
    summary = {'out_dir': out_dir, 'image_size': int(image_size),
               'seed': int(seed), 'classes': list(CLASSES)}
    for split, code in _SPLITS:
        num = num_train if split == 'train' else num_val
        summary[split] = _make_split(out_dir, split, code, int(num),
                                     int(image_size), int(seed),
                                     int(min_objects), int(max_objects))
    return summary
