"""Checks of a COCO annotation file and its images, each problem one clear
error naming the file, the entry, the field and what is allowed.

Used by :class:`msdet.datasets.CheckedCocoDataset` when it is built; the
functions take the parsed JSON, so the file is read once.
"""
import json
import math
import os
import os.path as osp
import struct
from concurrent.futures import ThreadPoolExecutor

#: fields each entry of a section needs (``area``: mmdet reads it to skip
#: empty boxes, COCOeval to bucket objects by size)
REQUIRED = {'images': ('id', 'file_name', 'width', 'height'),
            'annotations': ('id', 'image_id', 'category_id', 'bbox', 'area'),
            'categories': ('id', 'name')}
IDS = 'an integer or a string'


def read_annotation_file(ann_file):
    """The parsed JSON of ``ann_file``, or one error if it is missing or not
    JSON."""
    if not osp.isfile(ann_file):
        raise FileNotFoundError(
            f'COCO annotation file {ann_file!r} not found (check data_root '
            'and ann_file in the config).')
    try:
        with open(ann_file, 'rb') as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f'COCO annotation file {ann_file!r} is not JSON: '
                         f'{err}.') from None


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 4] + ' ...'


_UNSET = object()


class _Entry:
    """Raises the error for one entry: file, section[index] (id), field."""

    def __init__(self, ann_file):
        self.ann_file = ann_file

    def bad(self, section, index, entry, field, allowed, value=_UNSET):
        is_dict = isinstance(entry, dict)
        ident = (f' (id {_short(entry["id"])})'
                 if is_dict and 'id' in entry and field != 'id' else '')
        if field is None:
            what = f' is {_short(entry)}'
        elif value is _UNSET and not (is_dict and field in entry):
            what = f' has no {field!r}'
        else:
            what = f' {field}=' + _short(entry[field] if value is _UNSET
                                         else value)
        raise ValueError(f'{self.ann_file!r}: {section}[{index}]{ident}'
                         f'{what}; allowed: {allowed}.')


_ID = {int, str}  # not bool
_NUMBER = {int, float}


def _numbers(values):
    """All ints / floats (not bools), all finite; C-speed on long lists (a
    NaN or infinity makes the sum non-finite)."""
    return set(map(type, values)) <= _NUMBER and math.isfinite(sum(values))


def _is_size(value):
    return isinstance(value, int) and not isinstance(value, bool) \
        and value > 0


def _check_entries(data, section, err):
    """Each entry an object with the section's fields and a unique int / str
    id; returns ``{id: index}``."""
    required = REQUIRED[section]
    need = set(required)
    seen = {}
    for i, entry in enumerate(data[section]):
        if type(entry) is not dict:
            err.bad(section, i, entry, None,
                    f'a JSON object with {list(required)}')
        if not entry.keys() >= need:
            missing = next(k for k in required if k not in entry)
            err.bad(section, i, entry, missing,
                    f'each entry of {section!r} needs {list(required)}')
        ident = entry['id']
        if type(ident) not in _ID:
            err.bad(section, i, entry, 'id', IDS)
        if ident in seen:
            err.bad(section, i, entry, 'id',
                    f'a unique id ({section}[{seen[ident]}] has it too)')
        seen[ident] = i
    return seen


def _check_polygons(seg, i, ann, err):
    allowed = ('a list of polygons [x1, y1, x2, y2, ...], each at least 3 '
               'points (6 numbers, an even count)')
    if not seg:
        return False
    for poly in seg:
        if type(poly) is not list or len(poly) < 6 or len(poly) % 2 \
                or not _numbers(poly):
            err.bad('annotations', i, ann, 'segmentation', allowed,
                    value=poly)
    return True


def _check_rle(seg, i, ann, image, err):
    height, width = image['height'], image['width']
    allowed = ("run-length encoding dict(size=[height, width], counts=...) "
               f'of its image, size [{height}, {width}]')
    counts, size = seg.get('counts'), seg.get('size')
    if size != [height, width]:
        err.bad('annotations', i, ann, 'segmentation.size', allowed,
                value=size)
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts) or \
                sum(counts) != height * width:
            err.bad('annotations', i, ann, 'segmentation.counts',
                    'a string (compressed RLE) or a list of run lengths '
                    f'>= 0 summing to height x width = {height * width}',
                    value=counts)
    elif not (isinstance(counts, str) and counts):
        err.bad('annotations', i, ann, 'segmentation.counts',
                'a string (compressed RLE) or a list of run lengths',
                value=counts)
    return True


def check_coco(data, ann_file, classes=None, need_masks=False,
               test_mode=False):
    """Validate a parsed COCO annotation file.

    Raises one ``ValueError`` for the first problem: not an object; a
    missing ``images`` / ``categories`` (or, unless ``test_mode``,
    ``annotations``) list; an entry that is not an object, lacks a field of
    :data:`REQUIRED` or repeats an id (or a category name); an id that is not
    an int or str; an image ``file_name`` that is not a non-empty string,
    ``width`` / ``height`` not positive ints; an annotation whose
    ``image_id`` / ``category_id`` is not in the file, whose ``bbox`` is not
    4 finite numbers with width and height >= 0, whose ``area`` is not a
    finite number >= 0, whose ``iscrowd`` is not 0 / 1; a ``segmentation``
    that is neither polygons of >= 3 points nor an RLE of its image's size
    (with uncompressed counts summing to height x width); with
    ``need_masks``, an annotation mmdet would train on without a
    ``segmentation``; with ``classes``, a class the file does not have or
    that has no annotation.

    Returns what mmdet's ``CocoDataset`` skips on purpose, as counts:
    ``crowd`` (kept as ignored regions), ``tiny`` (boxes under 1 px, of area
    0 or outside their image), ``other_classes`` (categories not in
    ``classes``), ``ignored`` (``ignore: true``).
    """
    err = _Entry(ann_file)
    if not isinstance(data, dict):
        raise ValueError(f'{ann_file!r}: a COCO file holds a JSON object '
                         f'with {sorted(REQUIRED)}, not '
                         f'{type(data).__name__}.')
    sections = ['images', 'categories'] + ([] if test_mode and
                                           'annotations' not in data
                                           else ['annotations'])
    for section in sections:
        if not isinstance(data.get(section), list):
            problem = ('is not a list' if section in data else 'is missing')
            raise ValueError(f'{ann_file!r}: the {section!r} list {problem}; '
                             f'a COCO file needs {sorted(REQUIRED)}.')
    cats = _check_entries(data, 'categories', err)
    names = {}
    for i, cat in enumerate(data['categories']):
        if not isinstance(cat['name'], str) or cat['name'] in names:
            err.bad('categories', i, cat, 'name',
                    'a string naming one category only')
        names[cat['name']] = cat['id']
    images = _check_entries(data, 'images', err)
    for i, img in enumerate(data['images']):
        if not (isinstance(img['file_name'], str) and img['file_name']):
            err.bad('images', i, img, 'file_name', 'a non-empty string')
        for key in ('width', 'height'):
            if not _is_size(img[key]):
                err.bad('images', i, img, key, 'an integer > 0')
    counts = dict(crowd=0, tiny=0, other_classes=0, ignored=0)
    anns = data.get('annotations', [])
    if 'annotations' in sections:
        _check_entries(data, 'annotations', err)
    wanted = None if classes is None else {names.get(c) for c in classes}
    per_class = dict.fromkeys(wanted or (), 0)
    entries = data['images']
    for i, ann in enumerate(anns):
        image_id = ann['image_id']
        if type(image_id) not in _ID or image_id not in images:
            err.bad('annotations', i, ann, 'image_id',
                    f'the id of an entry of images ({len(images)} in the '
                    'file)')
        category = ann['category_id']
        if type(category) not in _ID or category not in cats:
            err.bad('annotations', i, ann, 'category_id',
                    f'the id of an entry of categories: {sorted(cats)[:20]}')
        image = entries[images[image_id]]
        bbox = ann['bbox']
        if type(bbox) is not list or len(bbox) != 4 or not _numbers(bbox) \
                or bbox[2] < 0 or bbox[3] < 0:
            err.bad('annotations', i, ann, 'bbox',
                    '[x, y, width, height], 4 finite numbers with width '
                    'and height >= 0')
        area = ann['area']
        if type(area) not in _NUMBER or not 0 <= area < math.inf:
            err.bad('annotations', i, ann, 'area', 'a finite number >= 0')
        crowd = ann.get('iscrowd', 0)
        if crowd not in (0, 1):
            err.bad('annotations', i, ann, 'iscrowd', '0 or 1')
        seg = ann.get('segmentation')
        if type(seg) is list:
            has_mask = _check_polygons(seg, i, ann, err)
        elif type(seg) is dict:
            has_mask = _check_rle(seg, i, ann, image, err)
        elif seg is None:
            has_mask = False
        else:
            err.bad('annotations', i, ann, 'segmentation',
                    'polygons (a list of lists of numbers) or an RLE dict')
        # what mmdet's CocoDataset.parse_data_info skips, in its order
        if ann.get('ignore', False):
            counts['ignored'] += 1
            continue
        x, y, w, h = bbox
        if min(x + w, image['width']) <= max(x, 0) or \
                min(y + h, image['height']) <= max(y, 0) or \
                area <= 0 or w < 1 or h < 1:
            counts['tiny'] += 1
            continue
        if wanted is not None and category not in wanted:
            counts['other_classes'] += 1
            continue
        if need_masks and not has_mask:
            err.bad('annotations', i, ann, 'segmentation',
                    'polygons or an RLE for every annotation, as the '
                    'pipeline loads masks (LoadAnnotations with_mask=True)')
        if crowd:
            counts['crowd'] += 1
        elif wanted is not None:
            per_class[category] += 1
    if classes is not None:
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise ValueError(f'classes {unknown} of the config are not '
                             f'categories of {ann_file!r}; it has '
                             f'{sorted(names)[:20]}.')
        empty = [c for c in classes if not per_class[names[c]]]
        if empty and anns:
            raise ValueError(f'classes {empty} have zero annotations in '
                             f'{ann_file!r}; remove them from '
                             'metainfo.classes or annotate them.')
    return counts


# --- image files --------------------------------------------------------

_PNG = b'\x89PNG\r\n\x1a\n'
_OTHER = {b'BM': 'BMP', b'II*\x00': 'TIFF', b'MM\x00*': 'TIFF'}
#: JPEG start-of-frame markers (they hold the image size)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
        0xCE, 0xCF}
_TAIL = 1024


def _jpeg_size(fd):
    """(width, height) from the first start-of-frame segment, or None."""
    pos = 2
    while True:
        marker = os.pread(fd, 4, pos)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        code = marker[1]
        if code == 0xFF:  # fill byte
            pos += 1
            continue
        if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:
            pos += 2  # markers without a length
            continue
        if code in (0xD9, 0xDA) or len(marker) < 4:
            return None  # end of image / start of scan before a frame
        if code in _SOF:
            frame = os.pread(fd, 5, pos + 4)
            if len(frame) < 5:
                return None
            height, width = struct.unpack('>HH', frame[1:5])
            return width, height
        pos += 2 + struct.unpack('>H', marker[2:4])[0]


def image_problem(path):
    """Why the file at ``path`` cannot be a complete image, else None; for
    JPEG and PNG also its ``(width, height)`` from the header.

    Reads the first 32 bytes and the last 1 KiB (and, for a JPEG, the
    segment headers up to its frame header), never the pixels: a JPEG needs
    a start-of-frame header and its end-of-image marker, a PNG its IHDR
    header and IEND chunk (a file cut short loses the end); BMP, TIFF and
    WebP are recognised by their signature only. Anything else (an empty
    file, HTML saved as .jpg, ...) is a problem. Not detected: damage inside
    the compressed pixel data of a file of the right length.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as error:
        return f'unreadable ({error.strerror})', None
    try:
        head = os.pread(fd, 32, 0)
        size = os.fstat(fd).st_size
        tail = os.pread(fd, _TAIL, max(0, size - _TAIL))
        if head.startswith(_PNG) and head[12:16] == b'IHDR':
            if b'IEND' not in tail:
                return 'a PNG cut short (no IEND chunk)', None
            return None, struct.unpack('>II', head[16:24])
        if head.startswith(b'\xff\xd8'):
            frame = _jpeg_size(fd)
            if frame is None:
                return 'a JPEG without a frame header', None
            if b'\xff\xd9' not in tail:
                return 'a JPEG cut short (no end-of-image marker)', None
            return None, frame
    finally:
        os.close(fd)
    if any(head.startswith(magic) for magic in _OTHER) or \
            (head[:4] == b'RIFF' and head[8:12] == b'WEBP'):
        return None, None
    if not head:
        return 'an empty file', None
    return ('not an image (not JPEG, PNG, BMP, TIFF or WebP: starts with '
            f'{head[:8]!r})'), None


def check_images(data, img_dir, ann_file, workers=8):
    """Each image of ``data['images']`` is a file under ``img_dir`` that
    :func:`image_problem` accepts and, for JPEG / PNG, of the entry's
    ``width`` x ``height`` (or ``height`` x ``width``: EXIF orientation).
    One error for missing files (counted, first named), else for the first
    bad image."""
    entries = data['images']
    paths = [osp.join(img_dir, img['file_name']) for img in entries]
    chunks = [paths[k::workers] for k in range(workers)]
    with ThreadPoolExecutor(workers) as pool:  # overlaps file system waits
        parts = list(pool.map(lambda chunk: [image_problem(p) for p in chunk],
                              chunks))
    results = [None] * len(paths)
    for k, part in enumerate(parts):
        results[k::workers] = part
    absent = [p for p, (problem, _) in zip(paths, results)
              if problem and problem.startswith('unreadable') and
              not osp.exists(p)]
    if absent:
        raise FileNotFoundError(
            f'{len(absent)} image(s) listed in {ann_file!r} are not on '
            f'disk, e.g. {absent[0]!r} (check data_root and data_prefix).')
    for i, (img, path, (problem, size)) in enumerate(
            zip(entries, paths, results)):
        if problem:
            raise ValueError(f'image {path!r} of {ann_file!r} (images[{i}], '
                             f'id {img["id"]!r}) is {problem}; allowed: a '
                             'complete image file.')
        if size is not None and tuple(size) not in {
                (img['width'], img['height']), (img['height'], img['width'])}:
            raise ValueError(
                f'image {path!r} is {size[0]} x {size[1]} px, but '
                f'{ann_file!r} images[{i}] (id {img["id"]!r}) says width='
                f'{img["width"]}, height={img["height"]}; allowed: the '
                'size of the file.')
