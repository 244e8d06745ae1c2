"""COCO object-size buckets, as COCOeval's area ranges define them."""

BUCKETS = ('small', 'medium', 'large')
AREA_SMALL = 32**2
AREA_LARGE = 96**2


def area_bucket(area):
    """'small' (area <= 32^2), 'medium' or 'large' (area > 96^2)."""
    if area <= AREA_SMALL:
        return 'small'
    return 'large' if area > AREA_LARGE else 'medium'
