"""Prediction CLI: segment images with a pushed model and write masks, colour masks and overlays.

    python -m modules.predict --model outputs/petseg/serving_model IMAGE_OR_DIR_OR_GLOB... --out predictions/

`--model` is a SavedModel directory or a serving root with numbered versions (the newest is used,
or `--version N`). Each image's raw bytes go through `serving_full_size`, which returns the mask at the
image's own size (older models without it: `serving_default`'s 128x128 mask, upscaled here); for
`NAME.jpg` it writes `NAME_mask.png` (class ids in the order of the classes the model carries), `NAME_mask_color.png` and
`NAME_overlay.png` (colour mask over the original), all at the original size, then prints the share of
each class. Unreadable files are reported and skipped; the exit code is 1 if any was skipped.
"""

import argparse
import glob
import io
import os
import sys
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')  # the SavedModel holds a TFT layer built with Keras 2

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402
from tqdm import tqdm  # noqa: E402

from modules import classes, paths, signatures, visualize  # noqa: E402

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif')


def resolve_model_dir(model: str, version: Optional[int] = None) -> str:
    """The SavedModel to load: `model` itself, or a numbered version under a serving root.

    Args:
      model: SavedModel directory or serving root.
      version: version under a serving root; None for the newest.

    Returns:
      The SavedModel directory.

    Raises:
      FileNotFoundError: no SavedModel there.
    """
    if os.path.exists(os.path.join(model, paths.SAVED_MODEL_FILE)) and version is None:
        return model
    if not paths.numbered_versions(model):
        raise FileNotFoundError(f'No SavedModel in {model!r} and no numbered versions under it.')
    return paths.version_dir(model, version)


def expand_inputs(inputs: Iterable[str]) -> List[str]:
    """Files, directories (their images, sorted) and globs -> image paths, in order, without repeats."""
    paths: List[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item) if f.lower().endswith(IMAGE_EXTENSIONS))
        elif any(c in item for c in '*?['):
            found = sorted(glob.glob(item))
        else:
            found = [item]
        paths.extend(p for p in found if p not in paths)
    return paths


def mask_signature(model):
    """(signature, whether it answers at full size): `serving_full_size` where the model has it."""
    if signatures.SERVING_FULL_SIZE in model.signatures:
        return model.signatures[signatures.SERVING_FULL_SIZE], True
    return model.signatures[signatures.SERVING_DEFAULT], False


def predict_file(serve, path: str, full_size: bool = True) -> Tuple[Image.Image, np.ndarray]:
    """Reads one image file and returns it with its class-id mask at the image's own size."""
    data = open(path, 'rb').read()
    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
            original = picture.convert('RGB')
    except UnidentifiedImageError:
        raise ValueError('not an image file') from None
    outputs = serve(image_bytes=tf.constant([data]))
    if not full_size:
        small = Image.fromarray(outputs['mask'][0].numpy())
        return original, np.asarray(small.resize(original.size, Image.NEAREST))
    height, width = int(outputs['height'][0]), int(outputs['width'][0])
    return original, outputs['mask'][0, :height, :width].numpy()


def write_outputs(original: Image.Image, mask: np.ndarray, out_dir: str, stem: str,
                  colors: Sequence[Sequence[int]] = classes.OXFORD_IIIT_PET.colors) -> Dict[str, str]:
    """Writes the class-id mask, its colour version and the overlay (`colors` per class); returns their paths."""
    paths = {kind: os.path.join(out_dir, f'{stem}_{kind}.png') for kind in ('mask', 'mask_color', 'overlay')}
    Image.fromarray(mask.astype(np.uint8), 'L').save(paths['mask'])
    Image.fromarray(visualize.colorize(mask, colors)).save(paths['mask_color'])
    visualize.overlay(original, mask, colors=colors).save(paths['overlay'])
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('images', nargs='+', help='image files, directories or globs')
    parser.add_argument('--model', required=True, help='SavedModel dir or serving root with numbered versions')
    parser.add_argument('--version', type=int, help='version under a serving root (default: newest)')
    parser.add_argument('--out', default='predictions', help='output directory (default: ./predictions)')
    args = parser.parse_args(argv)

    model_dir = resolve_model_dir(args.model, args.version)
    serve, full_size = mask_signature(tf.saved_model.load(model_dir))
    description = classes.read_from_model(model_dir)[0]
    os.makedirs(args.out, exist_ok=True)
    paths = expand_inputs(args.images)
    print(f'Model: {model_dir}\nImages: {len(paths)}')
    skipped = []
    for path in tqdm(paths, unit='image', disable=len(paths) < 5 or not sys.stderr.isatty()):
        try:
            original, mask = predict_file(serve, path, full_size)
        except (OSError, ValueError, tf.errors.InvalidArgumentError) as e:
            reason = getattr(e, 'message', str(e)).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            skipped.append(path)
            print(f'SKIPPED {path}: {reason}')
            continue
        write_outputs(original, mask, args.out, os.path.splitext(os.path.basename(path))[0], description.colors)
        areas = ', '.join(f'{name} {share:5.1%}' for name, share in
                          visualize.class_areas(mask, description.names).items())
        print(f'{path} ({original.size[0]}x{original.size[1]}): {areas}')
    print(f'Wrote {len(paths) - len(skipped)} predictions to {args.out}; skipped {len(skipped)}.')
    return 1 if skipped else 0


if __name__ == '__main__':
    sys.exit(main())
