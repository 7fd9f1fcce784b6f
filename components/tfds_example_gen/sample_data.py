"""Generates small, learnable datasets in the exact layout of the Oxford-IIIT Pet archives.

Real data cannot be downloaded on machines without internet, so tests, the default run and the
benchmarks use images made here. The layout is the one `images.tar.gz` and `annotations.tar.gz`
extract to, so the same offline TFDS builder reads both:

    images/<Breed>_<n>.jpg                      RGB JPEG, 200-500 px per side
    annotations/trimaps/<Breed>_<n>.png         8-bit PNG, 1=pet, 2=background, 3=border
    annotations/xmls/<Breed>_<n>.xml            head bounding box (trainval images only)
    annotations/trainval.txt, test.txt          "<Breed>_<n> CLASS-ID SPECIES BREED-ID"
    annotations/list.txt                        both lists with the original's comment header

Each image holds a textured "pet" (a union of ellipses: body, head, ears) ringed by a border band,
on a textured background, so a U-Net learns it in a few epochs. Image `i` depends only on the seed
and `i`: generating more images later keeps the first ones identical, like a growing dataset.

    python -m components.tfds_example_gen.sample_data OUT_DIR --num-train 20 --num-test 10
"""

import argparse
import gzip
import io
import os
import tarfile
import tempfile
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageDraw

# The 37 breeds of Oxford-IIIT Pet; capitalised names are cats, as in the original file names.
BREEDS = (
    'Abyssinian', 'american_bulldog', 'american_pit_bull_terrier', 'basset_hound', 'beagle',
    'Bengal', 'Birman', 'Bombay', 'boxer', 'British_Shorthair', 'chihuahua', 'Egyptian_Mau',
    'english_cocker_spaniel', 'english_setter', 'german_shorthaired', 'great_pyrenees',
    'havanese', 'japanese_chin', 'keeshond', 'leonberger', 'Maine_Coon', 'miniature_pinscher',
    'newfoundland', 'Persian', 'pomeranian', 'pug', 'Ragdoll', 'Russian_Blue', 'saint_bernard',
    'samoyed', 'scottish_terrier', 'shiba_inu', 'Siamese', 'Sphynx',
    'staffordshire_bull_terrier', 'wheaten_terrier', 'yorkshire_terrier',
)
CAT_SPECIES, DOG_SPECIES = 1, 2
TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER = 1, 2, 3

_PET_PALETTE = np.array([
    (150, 95, 50), (200, 140, 70), (60, 45, 35), (230, 220, 200), (120, 120, 125), (220, 170, 110),
], dtype=np.float32)
_BACKGROUND_PALETTE = np.array([
    (70, 130, 60), (90, 120, 170), (160, 160, 150), (110, 90, 130), (40, 90, 100), (170, 190, 120),
], dtype=np.float32)
_LIST_HEADER = (
    '#Image CLASS-ID SPECIES BREED ID\n'
    '#ID: 1:37 Class ids\n'
    '#SPECIES: 1:Cat 2:Dog\n'
    '#BREED ID: 1-25:Cat 1:12:Dog\n'
    '#All images with 1st letter as captial are cat images\n'
    '#images with small first letter are dog images\n'
)


@dataclass(frozen=True)
class SampleRecord:
    """One generated image as listed in `trainval.txt` / `test.txt`."""

    name: str
    class_id: int
    species: int
    breed_id: int

    def list_line(self) -> str:
        return f'{self.name} {self.class_id} {self.species} {self.breed_id}\n'


def _breed_ids() -> List[Tuple[int, int]]:
    """(species, breed id within species) for each breed, numbered as in the original list."""
    counters = {CAT_SPECIES: 0, DOG_SPECIES: 0}
    ids = []
    for breed in BREEDS:
        species = CAT_SPECIES if breed[0].isupper() else DOG_SPECIES
        counters[species] += 1
        ids.append((species, counters[species]))
    return ids


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1] made by upsampling a small random grid."""
    grid = rng.uniform(0, 255, size=(cells, cells)).astype(np.uint8)
    big = Image.fromarray(grid, 'L').resize((width, height), Image.BICUBIC)
    return np.asarray(big, dtype=np.float32) / 127.5 - 1.0


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    color = _BACKGROUND_PALETTE[rng.integers(len(_BACKGROUND_PALETTE))]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(12, 40)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    texture = 35 * _smooth_noise(rng, height, width, rng.integers(3, 8)) + 15 * stripes
    return color[None, None, :] + texture[..., None] + rng.normal(0, 6, (height, width, 3))


def _pet_shape(rng: np.random.Generator, height: int, width: int) -> Tuple[Image.Image, tuple]:
    """Draws the pet silhouette; returns it and the head's (xmin, ymin, xmax, ymax)."""
    mask = Image.new('L', (width, height), 0)
    draw = ImageDraw.Draw(mask)
    scale = rng.uniform(0.25, 0.45) * min(height, width)
    cx = rng.uniform(0.35, 0.65) * width
    cy = rng.uniform(0.4, 0.65) * height
    body_w, body_h = scale * rng.uniform(0.9, 1.4), scale * rng.uniform(0.6, 0.9)
    draw.ellipse((cx - body_w, cy - body_h / 2, cx + body_w, cy + body_h), fill=255)
    head_r = scale * rng.uniform(0.45, 0.65)
    hx = cx + rng.choice([-1, 1]) * body_w * rng.uniform(0.5, 0.8)
    hy = cy - body_h * rng.uniform(0.5, 0.9)
    head = (hx - head_r, hy - head_r, hx + head_r, hy + head_r)
    draw.ellipse(head, fill=255)
    for side in (-1, 1):
        ear_x = hx + side * head_r * 0.6
        ear_y = hy - head_r * 0.8
        ear = head_r * rng.uniform(0.25, 0.4)
        draw.polygon([(ear_x - ear, ear_y + ear), (ear_x + ear, ear_y + ear),
                      (ear_x + side * ear * 0.3, ear_y - ear * 1.5)], fill=255)
    clipped_head = (max(head[0], 0), max(head[1], 0), min(head[2], width - 1), min(head[3], height - 1))
    return mask, clipped_head


def _pet_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    color = _PET_PALETTE[rng.integers(len(_PET_PALETTE))]
    spots = Image.new('L', (width, height), 0)
    draw = ImageDraw.Draw(spots)
    for _ in range(int(rng.integers(10, 40))):
        x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(4, 18)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    spot_layer = np.asarray(spots, dtype=np.float32)[..., None] / 255.0
    fur = 20 * _smooth_noise(rng, height, width, 24)[..., None] + rng.normal(0, 10, (height, width, 1))
    return color[None, None, :] * (1 - 0.45 * spot_layer) + fur


def _square_reduce(mask: np.ndarray, radius: int, reduce) -> np.ndarray:
    """`reduce` (np.max or np.min) over the (2 radius + 1)-pixel square around each pixel, clipped at the
    image's edges: PIL's MaxFilter / MinFilter, computed one axis at a time (6x faster at radius 4)."""
    padded = np.pad(mask, radius, mode='edge')
    rows = reduce(sliding_window_view(padded, 2 * radius + 1, axis=0), axis=-1)
    return reduce(sliding_window_view(rows, 2 * radius + 1, axis=1), axis=-1)


def make_example(seed: int, index: int) -> Tuple[np.ndarray, np.ndarray, tuple]:
    """Renders one image and its trimap.

    Args:
      seed: dataset seed.
      index: image index; the result depends only on (seed, index).

    Returns:
      (RGB uint8 image [H, W, 3], trimap uint8 [H, W] with values 1/2/3, head box in pixels).
    """
    rng = np.random.default_rng([seed, index])
    height, width = (int(v) for v in rng.integers(200, 501, size=2))
    silhouette, head_box = _pet_shape(rng, height, width)
    border = int(rng.integers(2, 5))
    inside = np.asarray(silhouette) > 0
    trimap = np.full((height, width), TRIMAP_BACKGROUND, np.uint8)
    trimap[inside] = TRIMAP_PET
    trimap[_square_reduce(inside, border, np.max) & ~_square_reduce(inside, border, np.min)] = TRIMAP_BORDER
    image = np.where(inside[..., None], _pet_texture(rng, height, width), _background(rng, height, width))
    return np.clip(image, 0, 255).astype(np.uint8), trimap, head_box


def _head_xml(name: str, width: int, height: int, box: tuple) -> str:
    xmin, ymin, xmax, ymax = (int(round(v)) for v in box)
    return (
        f'<annotation><folder>OXIIIT</folder><filename>{name}.jpg</filename>'
        f'<size><width>{width}</width><height>{height}</height><depth>3</depth></size>'
        f'<segmented>0</segmented><object><name>{"cat" if name[0].isupper() else "dog"}</name>'
        f'<pose>Frontal</pose><truncated>0</truncated><occluded>0</occluded>'
        f'<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>'
        f'<difficult>0</difficult></object></annotation>\n'
    )


def _records(num_images: int) -> List[SampleRecord]:
    breed_ids = _breed_ids()
    per_breed = [0] * len(BREEDS)
    records = []
    for index in range(num_images):
        breed = index % len(BREEDS)
        per_breed[breed] += 1
        species, breed_id = breed_ids[breed]
        records.append(SampleRecord(f'{BREEDS[breed]}_{per_breed[breed]}', breed + 1, species, breed_id))
    return records


def write_folders(out_dir: str, num_train: int, num_test: int, seed: int = 0) -> Tuple[str, str]:
    """Writes `images/` and `annotations/` as the original archives extract.

    Args:
      out_dir: directory to write into (created if missing).
      num_train: images listed in `annotations/trainval.txt`.
      num_test: images listed in `annotations/test.txt`.
      seed: dataset seed.

    Returns:
      The paths of the `images` and `annotations` directories.
    """
    if num_train < 1 or num_test < 1:
        raise ValueError(f'num_train and num_test must be >= 1, got {num_train} and {num_test}')
    images_dir = os.path.join(out_dir, 'images')
    annotations_dir = os.path.join(out_dir, 'annotations')
    for sub in (images_dir, os.path.join(annotations_dir, 'trimaps'), os.path.join(annotations_dir, 'xmls')):
        os.makedirs(sub, exist_ok=True)
    records = _records(num_train + num_test)
    for index, record in enumerate(records):
        image, trimap, head_box = make_example(seed, index)
        Image.fromarray(image).save(os.path.join(images_dir, record.name + '.jpg'), quality=90)
        Image.fromarray(trimap, 'L').save(os.path.join(annotations_dir, 'trimaps', record.name + '.png'))
        if index < num_train:
            with open(os.path.join(annotations_dir, 'xmls', record.name + '.xml'), 'w') as f:
                f.write(_head_xml(record.name, image.shape[1], image.shape[0], head_box))
    _write_lists(annotations_dir, records[:num_train], records[num_train:])
    return images_dir, annotations_dir


def _write_lists(annotations_dir: str, train: Sequence[SampleRecord], test: Sequence[SampleRecord]) -> None:
    with open(os.path.join(annotations_dir, 'trainval.txt'), 'w') as f:
        f.writelines(r.list_line() for r in train)
    with open(os.path.join(annotations_dir, 'test.txt'), 'w') as f:
        f.writelines(r.list_line() for r in test)
    with open(os.path.join(annotations_dir, 'list.txt'), 'w') as f:
        f.write(_LIST_HEADER)
        f.writelines(r.list_line() for r in sorted([*train, *test], key=lambda r: r.name))


def write_archives(out_dir: str, num_train: int, num_test: int, seed: int = 0) -> Tuple[str, str]:
    """Writes `images.tar.gz` and `annotations.tar.gz` with the original archives' members.

    Args:
      out_dir: directory to write into (created if missing).
      num_train: images listed in `annotations/trainval.txt`.
      num_test: images listed in `annotations/test.txt`.
      seed: dataset seed.

    Returns:
      The paths of the two archives.
    """
    os.makedirs(out_dir, exist_ok=True)
    archives = []
    with tempfile.TemporaryDirectory(dir=out_dir) as staging:
        for folder in write_folders(staging, num_train, num_test, seed):
            archive = os.path.join(out_dir, os.path.basename(folder) + '.tar.gz')
            # gzip's own header carries a timestamp too; zero both so a seed gives identical bytes.
            with gzip.GzipFile(archive, 'wb', mtime=0) as gz, tarfile.open(fileobj=gz, mode='w') as tar:
                tar.add(folder, arcname=os.path.basename(folder), filter=_reset_tar_metadata)
            archives.append(archive)
    return archives[0], archives[1]


def _reset_tar_metadata(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, '', ''
    return info


def encode_jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of an RGB uint8 array (for tests and request examples)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='JPEG', quality=90)
    return buffer.getvalue()


def main(argv: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out_dir', help='directory to write the dataset into')
    parser.add_argument('--num-train', type=int, default=60, help='images in trainval.txt (default 60)')
    parser.add_argument('--num-test', type=int, default=20, help='images in test.txt (default 20)')
    parser.add_argument('--seed', type=int, default=0, help='dataset seed (default 0)')
    parser.add_argument('--archives', action='store_true',
                        help='write images.tar.gz + annotations.tar.gz instead of extracted folders')
    args = parser.parse_args(argv)
    writer = write_archives if args.archives else write_folders
    paths = writer(args.out_dir, args.num_train, args.num_test, args.seed)
    print(f'Wrote {args.num_train} train + {args.num_test} test images: {", ".join(paths)}')


if __name__ == '__main__':
    main()
