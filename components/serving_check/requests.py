"""The requests a serving check sends: a typical photo for latency, and a fixed catalogue of awkward and bad ones.

Each bad request says what a healthy model must do with it: return a valid mask ('mask'), fail cleanly with
InvalidArgumentError ('error'), or either. Used by the ServingCheck probe, the local server's tests and the
list in docs/serving.md, so all three speak of the same cases.
"""

import dataclasses
import io
from typing import List

import numpy as np
from PIL import Image

MASK, ERROR, EITHER = 'mask', 'error', 'mask or error'


@dataclasses.dataclass(frozen=True)
class BadRequest:
    """One request of the catalogue: the images of one call and what must come back."""

    name: str
    images: List[bytes]
    expect: str
    why: str


def _photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth, photo-like RGB picture (JPEG-friendly, unlike noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC))


def encode(array: np.ndarray, image_format: str, mode: str = None, **options) -> bytes:
    """The bytes of `array` saved by PIL as `image_format` (after converting to `mode`, if given)."""
    picture = Image.fromarray(array)
    if mode:
        picture = picture.convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def typical_jpeg(width: int = 500, height: int = 375, seed: int = 0) -> bytes:
    """A JPEG of the Oxford-IIIT Pet's typical size, for latency figures."""
    return encode(_photo(width, height, seed), 'JPEG', quality=90)


def _animated_gif() -> bytes:
    frames = [Image.fromarray(_photo(120, 90, seed)) for seed in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format='GIF', save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def bad_requests() -> List[BadRequest]:
    """The catalogue, in a fixed order."""
    good = typical_jpeg()
    rgb = _photo(200, 150, seed=1)
    gray16 = (rgb.mean(-1) * 257).astype(np.uint16)
    return [
        BadRequest('empty bytes', [b''], ERROR, 'nothing to segment'),
        BadRequest('random bytes', [np.random.default_rng(7).bytes(2048)], ERROR, 'not an image'),
        BadRequest('text', [b'<html><body>not an image</body></html>'], ERROR, 'not an image'),
        BadRequest('truncated JPEG', [good[:len(good) // 2]], ERROR, 'half an image is not an image'),
        BadRequest('1x1 image', [encode(rgb[:1, :1], 'PNG')], MASK, 'tiny, but an image'),
        BadRequest('4000x3000 JPEG', [typical_jpeg(4000, 3000, seed=2)], MASK, 'large, but an image'),
        BadRequest('grayscale JPEG', [encode(rgb, 'JPEG', mode='L')], MASK, 'decoded to 3 channels'),
        BadRequest('CMYK JPEG', [encode(rgb, 'JPEG', mode='CMYK')], EITHER, 'TF decodes some CMYK JPEGs'),
        BadRequest('RGBA PNG', [encode(np.dstack([rgb, np.full(rgb.shape[:2], 90, np.uint8)]), 'PNG')], MASK,
                   'alpha dropped'),
        BadRequest('animated GIF', [_animated_gif()], MASK, 'first frame'),
        BadRequest('BMP', [encode(rgb, 'BMP')], MASK, 'decoded like any image'),
        BadRequest('16-bit PNG', [encode(gray16, 'PNG')], MASK, 'scaled to 8 bits'),
        BadRequest('batch of good and bad', [good, b'not an image', good], ERROR,
                   'one bad image fails the whole call, never a silent partial answer'),
    ]
