"""Generates small K-class segmentation datasets in the `folders` and Pascal VOC layouts (your-own-data demos).

Each image shows two to four shapes on a textured background; every class other than the background (class 0)
has its own shape (disc, box, triangle, cross, ring, ...) and its own colour and texture, so a U-Net learns
them in a few epochs. Image `i` depends only on the seed and `i`.

    folders:  images/<stem>.jpg, masks/<stem>.png (class values 0..K-1; a palette PNG with --palette),
              splits/train.txt, splits/eval.txt, classes.json
    voc:      JPEGImages/<stem>.jpg, SegmentationClass/<stem>.png (palette PNG, 255 = a 'void' band around
              every shape, as VOC draws it), ImageSets/Segmentation/{train,val}.txt, classes.json

    python -m components.tfds_example_gen.sample_shapes OUT_DIR --classes 5 --num-train 40 --num-test 10 [--voc]
"""

import argparse
import json
import os
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from components.tfds_example_gen.sample_data import _background, _smooth_noise, _square_reduce
from modules import classes

SHAPES = ('disc', 'box', 'triangle', 'cross', 'ring', 'diamond', 'bar', 'star')
MAX_CLASSES = len(SHAPES) + 1
VOID = 255
_COLORS = np.array([(220, 60, 50), (240, 200, 40), (60, 90, 220), (240, 240, 240), (30, 30, 30), (200, 80, 220),
                    (60, 200, 200), (250, 140, 30)], np.float32)


def class_names(num_classes: int) -> List[str]:
    """`background` and the first K-1 shape names."""
    if not 2 <= num_classes <= MAX_CLASSES:
        raise ValueError(f'num_classes must be in 2..{MAX_CLASSES}, got {num_classes}')
    return ['background', *SHAPES[:num_classes - 1]]


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float) -> None:
    if shape == 'disc':
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif shape == 'box':
        draw.rectangle((cx - r, cy - r * 0.7, cx + r, cy + r * 0.7), fill=255)
    elif shape == 'triangle':
        draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=255)
    elif shape == 'cross':
        draw.rectangle((cx - r, cy - r * 0.3, cx + r, cy + r * 0.3), fill=255)
        draw.rectangle((cx - r * 0.3, cy - r, cx + r * 0.3, cy + r), fill=255)
    elif shape == 'ring':
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        draw.ellipse((cx - r * 0.5, cy - r * 0.5, cx + r * 0.5, cy + r * 0.5), fill=0)
    elif shape == 'diamond':
        draw.polygon([(cx, cy - r), (cx + r * 0.7, cy), (cx, cy + r), (cx - r * 0.7, cy)], fill=255)
    elif shape == 'bar':
        draw.rectangle((cx - r * 0.25, cy - r, cx + r * 0.25, cy + r), fill=255)
    else:
        points = [(cx + (r if k % 2 == 0 else r * 0.45) * np.cos(np.pi * k / 5 - np.pi / 2),
                   cy + (r if k % 2 == 0 else r * 0.45) * np.sin(np.pi * k / 5 - np.pi / 2)) for k in range(10)]
        draw.polygon(points, fill=255)


def make_shapes_example(seed: int, index: int, num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image [H, W, 3], class ids uint8 [H, W] in 0..K-1) of image `index`."""
    rng = np.random.default_rng([seed, index, num_classes])
    height, width = (int(v) for v in rng.integers(200, 361, size=2))
    image = _background(rng, height, width)
    mask = np.zeros((height, width), np.uint8)
    # Class `1 + index % (K-1)` is always among them, so every class shows up in a few images.
    chosen = [1 + index % (num_classes - 1)] + [int(c) for c in rng.integers(1, num_classes, rng.integers(1, 4))]
    for class_id in chosen:
        silhouette = Image.new('L', (width, height), 0)
        r = rng.uniform(0.12, 0.22) * min(height, width)
        _draw(ImageDraw.Draw(silhouette), SHAPES[class_id - 1], rng.uniform(r, width - r), rng.uniform(r, height - r), r)
        inside = np.asarray(silhouette) > 0
        texture = 25 * _smooth_noise(rng, height, width, 12)[..., None] + rng.normal(0, 8, (height, width, 1))
        image = np.where(inside[..., None], _COLORS[class_id - 1][None, None, :] + texture, image)
        mask[inside] = class_id
    return np.clip(image, 0, 255).astype(np.uint8), mask


def _palette_png(mask: np.ndarray, colors: Sequence[Sequence[int]], path: str) -> None:
    picture = Image.fromarray(mask, 'P')
    flat = [0] * 768
    for index, color in enumerate(colors):
        flat[3 * index:3 * index + 3] = list(color)
    flat[3 * VOID:3 * VOID + 3] = [224, 224, 192]  # VOC's void colour
    picture.putpalette(flat)
    picture.save(path)


def write_shapes(out_dir: str, num_train: int, num_test: int, num_classes: int = 5, seed: int = 0,
                 layout: str = 'folders', palette: bool = False) -> str:
    """Writes a K-class dataset in the `folders` or `voc` layout, with its `classes.json`; returns `out_dir`.

    Args:
      out_dir: directory to write into (created if missing).
      num_train: images in the training list.
      num_test: images in the eval list.
      num_classes: K, the background included (2..MAX_CLASSES).
      seed: dataset seed.
      layout: 'folders' or 'voc' (palette masks with a void band of value 255 around each shape).
      palette: in the folders layout, write masks as palette PNGs instead of grayscale ones.
    """
    if num_train < 1 or num_test < 1:
        raise ValueError(f'num_train and num_test must be >= 1, got {num_train} and {num_test}')
    voc = layout == 'voc'
    images_dir, masks_dir, lists_dir = ((os.path.join(out_dir, 'JPEGImages'), os.path.join(out_dir, 'SegmentationClass'),
                                         os.path.join(out_dir, 'ImageSets', 'Segmentation')) if voc else
                                        (os.path.join(out_dir, 'images'), os.path.join(out_dir, 'masks'),
                                         os.path.join(out_dir, 'splits')))
    for directory in (images_dir, masks_dir, lists_dir):
        os.makedirs(directory, exist_ok=True)
    description = classes.ClassDescription.from_dict(
        {'names': class_names(num_classes), **({'ignore': [VOID]} if voc else {})})
    stems = [f'shapes_{index:05d}' for index in range(num_train + num_test)]
    for index, stem in enumerate(stems):
        image, mask = make_shapes_example(seed, index, num_classes)
        Image.fromarray(image).save(os.path.join(images_dir, stem + '.jpg'), quality=92)
        path = os.path.join(masks_dir, stem + '.png')
        if voc:
            objects = mask > 0
            band = _square_reduce(objects, 2, np.max) & ~_square_reduce(objects, 2, np.min)
            _palette_png(np.where(band, VOID, mask).astype(np.uint8), description.colors, path)
        elif palette:
            _palette_png(mask, description.colors, path)
        else:
            Image.fromarray(mask, 'L').save(path)
    for name, listed in (('train.txt', stems[:num_train]), ('val.txt' if voc else 'eval.txt', stems[num_train:])):
        with open(os.path.join(lists_dir, name), 'w') as f:
            f.writelines(stem + '\n' for stem in listed)
    with open(os.path.join(out_dir, classes.FILE_NAME), 'w') as f:
        json.dump({key: value for key, value in description.to_dict().items() if value not in (None, [])}, f)
    return out_dir


def main(argv: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out_dir', help='directory to write the dataset into')
    parser.add_argument('--classes', type=int, default=5, help='K, the background included (default 5)')
    parser.add_argument('--num-train', type=int, default=60, help='training images (default 60)')
    parser.add_argument('--num-test', type=int, default=20, help='eval images (default 20)')
    parser.add_argument('--seed', type=int, default=0, help='dataset seed (default 0)')
    parser.add_argument('--voc', action='store_true', help='write the Pascal VOC layout with a void band')
    parser.add_argument('--palette', action='store_true', help='folders layout: palette PNG masks')
    args = parser.parse_args(argv)
    write_shapes(args.out_dir, args.num_train, args.num_test, args.classes, args.seed,
                 'voc' if args.voc else 'folders', args.palette)
    print(f'Wrote {args.num_train} train + {args.num_test} eval images of {args.classes} classes to {args.out_dir}')


if __name__ == '__main__':
    main()
