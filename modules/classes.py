"""What the classes of a segmentation dataset are: names, mask values, ignored values and colours.

A dataset describes its classes in a small JSON file (`classes.json` beside the data, or `--classes`):

    {"names": ["background", "cat", "dog", "person"]}                  # mask value i is class i
    {"names": [...], "values": [[0], [1, 2], [3]], "ignore": [255], "colors": [[0, 0, 0], ...]}

`values` maps mask values (0..255) to classes (several values may map to one class), `ignore` lists values
whose pixels count nowhere (VOC's and Cityscapes' 255), `colors` gives RGB per class for pictures and the web
page. Oxford-IIIT Pet's trimap (1 pet, 2 background, 3 border) and Pascal VOC's 21 classes are built in.

The description travels as data: ExampleGen checks masks against it and records it on the Examples artifact,
Transform and the Trainer receive it through `custom_config`, and the exported model carries it in
`assets.extra/classes.json` (with the image size), so the server, the web page, batch prediction and the
TFLite contract read the classes from the model itself.
"""

import dataclasses
import functools
import json
import os
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from modules import keys

# The transformed mask's value for pixels that count nowhere (ignored values); losses and metrics skip any
# label outside 0..K-1, this one included.
IGNORE_LABEL = 255
MAX_CLASSES = 255
MODEL_FILE = os.path.join('assets.extra', 'classes.json')
FILE_NAME = 'classes.json'
CUSTOM_CONFIG_KEY = 'classes'
IMAGE_SIZE_KEY = 'image_size'
DEFAULT_IMAGE_SIZE = 128

# Distinct, readable colours for descriptions without their own (class 0 dark, as a background usually is).
_DEFAULT_PALETTE = ((40, 60, 120), (230, 90, 40), (250, 230, 60), (60, 170, 90), (200, 60, 160), (90, 200, 230),
                    (150, 100, 60), (240, 150, 180), (120, 120, 120), (180, 220, 80), (100, 60, 200),
                    (250, 180, 60))


class ClassDescriptionError(ValueError):
    """A class description contradicts itself; the message names the field."""


@dataclasses.dataclass(frozen=True)
class ClassDescription:
    """The classes of a dataset and how its mask values map to them. Build with `from_dict` or a built-in."""

    names: Tuple[str, ...]
    values: Tuple[Tuple[int, ...], ...]
    colors: Tuple[Tuple[int, int, int], ...]
    ignore: Tuple[int, ...] = ()
    # A class every usable mask shows (Oxford: the pet); a mask without it is a broken annotation.
    required: Optional[str] = None

    @property
    def num_classes(self) -> int:
        return len(self.names)

    # Cached (a frozen dataclass's fields never change): ExampleGen asks for these once per example.
    @functools.cached_property
    def fraction_keys(self) -> Tuple[str, ...]:
        """ExampleGen's per-example feature of each class's pixel share, e.g. `pet_fraction`."""
        return tuple(re.sub(r'[^0-9a-zA-Z]+', '_', name).strip('_').lower() + keys.FRACTION_SUFFIX for name in self.names)

    def lookup_table(self) -> np.ndarray:
        """int64 [256], read-only: class id of each mask value, IGNORE_LABEL for ignored and unknown values."""
        return self._table

    def known_values(self) -> frozenset:
        return self._known

    @functools.cached_property
    def _table(self) -> np.ndarray:
        table = np.full(256, IGNORE_LABEL, np.int64)
        for class_id, class_values in enumerate(self.values):
            table[list(class_values)] = class_id
        table.setflags(write=False)
        return table

    @functools.cached_property
    def _known(self) -> frozenset:
        return frozenset(v for class_values in self.values for v in class_values) | frozenset(self.ignore)

    def to_dict(self) -> Dict[str, Any]:
        return {'names': list(self.names), 'values': [list(v) for v in self.values], 'ignore': list(self.ignore),
                'colors': [list(c) for c in self.colors], 'required': self.required}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, description: Mapping[str, Any]) -> 'ClassDescription':
        """Validates a description (the JSON form above) and fills what it leaves out.

        Args:
          description: `names` and optionally `values`, `ignore`, `colors`, `required`.

        Returns:
          The description.

        Raises:
          ClassDescriptionError: unknown keys, duplicate names or values, a class without a value, a value
            outside 0..255, more than 255 classes, colours that are not one RGB triple per class.
        """
        unknown = sorted(set(description) - {'names', 'values', 'ignore', 'colors', 'required'})
        _check(not unknown, f'unknown keys {unknown}; expected names, values, ignore, colors, required')
        names = description.get('names')
        _check(isinstance(names, (list, tuple)) and len(names) >= 2 and all(isinstance(n, str) and n for n in names),
               f'"names" must list at least two non-empty class names, got {names!r}')
        _check(len(names) <= MAX_CLASSES, f'{len(names)} classes; at most {MAX_CLASSES} fit 8-bit masks')
        _check(len(set(names)) == len(names), f'"names" repeats a name: {names}')
        values = description.get('values')
        if values is None:
            values = [[i] for i in range(len(names))]
        _check(isinstance(values, (list, tuple)) and len(values) == len(names),
               f'"values" needs one list of mask values per class ({len(names)}), got {values!r}')
        values = tuple(tuple(_as_value(v, f'values of class {names[i]!r}') for v in ([vs] if isinstance(vs, int)
                                                                                       else vs))
                       for i, vs in enumerate(values))
        empty = [names[i] for i, vs in enumerate(values) if not vs]
        _check(not empty, f'class {empty[:1]} has no mask value')
        ignore = tuple(_as_value(v, '"ignore"') for v in description.get('ignore') or ())
        seen: Dict[int, str] = {}
        for owner, owned in [(names[i], vs) for i, vs in enumerate(values)] + [('ignore', ignore)]:
            for value in owned:
                _check(value not in seen, f'mask value {value} belongs to both {seen.get(value)!r} and {owner!r}')
                seen[value] = owner
        colors = description.get('colors')
        if colors is None:
            colors = [_DEFAULT_PALETTE[i % len(_DEFAULT_PALETTE)] for i in range(len(names))]
        _check(len(colors) == len(names) and all(len(c) == 3 and all(0 <= int(x) <= 255 for x in c) for c in colors),
               f'"colors" needs one [r, g, b] (0..255) per class, got {colors!r}')
        required = description.get('required')
        _check(required is None or required in names, f'"required" {required!r} is not one of the names')
        return cls(tuple(names), values, tuple(tuple(int(x) for x in c) for c in colors), ignore, required)

    @classmethod
    def from_json(cls, text: str) -> 'ClassDescription':
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ClassDescriptionError(f'Class description is not JSON: {e}') from e


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ClassDescriptionError(f'Invalid class description: {message}')


def _as_value(value: Any, where: str) -> int:
    _check(isinstance(value, int) and 0 <= value <= 255, f'{where}: mask values are integers 0..255, got {value!r}')
    return int(value)


OXFORD_IIIT_PET = ClassDescription.from_dict({
    'names': ['pet', 'background', 'border'], 'values': [[1], [2], [3]], 'required': 'pet',
    # Warm pet, neutral background, bright border so the thin ring is easy to see.
    'colors': [[230, 90, 40], [40, 60, 120], [250, 230, 60]]})


def _voc_palette(count: int) -> Sequence[Tuple[int, int, int]]:
    """Pascal VOC's colour map (the bit-interleaving of the devkit's labelcolormap)."""
    palette = []
    for index in range(count):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette.append((r, g, b))
    return palette


VOC_NAMES = ('background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
             'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
             'tvmonitor')
PASCAL_VOC = ClassDescription.from_dict({'names': list(VOC_NAMES), 'ignore': [255],
                                         'colors': [list(c) for c in _voc_palette(len(VOC_NAMES))]})
BUILT_IN = {'oxford_iiit_pet': OXFORD_IIIT_PET, 'voc': PASCAL_VOC}


def load(name_or_path: str) -> ClassDescription:
    """A built-in description (`oxford_iiit_pet`, `voc`) or one read from a JSON file.

    Raises:
      ClassDescriptionError: the file is missing or invalid (the message names it).
    """
    if name_or_path in BUILT_IN:
        return BUILT_IN[name_or_path]
    import tensorflow as tf  # only for gs:// paths; a plain file would do without it
    if not tf.io.gfile.exists(name_or_path):
        raise ClassDescriptionError(
            f'Class description {name_or_path!r} not found: give a JSON file such as '
            f'{{"names": ["background", "cat"]}} or one of {sorted(BUILT_IN)}')
    with tf.io.gfile.GFile(name_or_path) as f:
        text = f.read()
    try:
        return ClassDescription.from_json(text)
    except ClassDescriptionError as e:
        raise ClassDescriptionError(f'{name_or_path}: {e}') from e


def to_custom_config(description: ClassDescription, image_size: int) -> Dict[str, Any]:
    """What Transform and the Trainer receive in their custom_config about the data."""
    return {CUSTOM_CONFIG_KEY: description.to_dict(), IMAGE_SIZE_KEY: image_size}


def from_custom_config(custom_config: Optional[Mapping[str, Any]]) -> Tuple[ClassDescription, int]:
    """(classes, image size) from a custom_config; Oxford at 128 px for configs made before they travelled."""
    custom_config = custom_config or {}
    description = custom_config.get(CUSTOM_CONFIG_KEY)
    return (ClassDescription.from_dict(description) if description else OXFORD_IIIT_PET,
            int(custom_config.get(IMAGE_SIZE_KEY) or DEFAULT_IMAGE_SIZE))


def write_to_model(model_dir: str, description: ClassDescription, image_size: int) -> None:
    """Stores the classes and image size in an exported SavedModel (`assets.extra/classes.json`)."""
    import tensorflow as tf
    path = os.path.join(model_dir, MODEL_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, 'w') as f:
        json.dump({**description.to_dict(), IMAGE_SIZE_KEY: image_size}, f, indent=1)


def read_from_model(model_dir: str) -> Tuple[ClassDescription, int]:
    """(classes, image size) an exported model carries; Oxford at 128 px for models exported before they did."""
    import tensorflow as tf
    path = os.path.join(model_dir, MODEL_FILE)
    if not tf.io.gfile.exists(path):
        return OXFORD_IIIT_PET, DEFAULT_IMAGE_SIZE
    with tf.io.gfile.GFile(path) as f:
        stored = json.load(f)
    image_size = int(stored.pop(IMAGE_SIZE_KEY, DEFAULT_IMAGE_SIZE))
    return ClassDescription.from_dict(stored), image_size
