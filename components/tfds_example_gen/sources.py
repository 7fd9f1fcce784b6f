"""Where TfdsExampleGen's data comes from: a prepared TFDS dataset, local files, or a download.

Offline sources and one online one resolve to a prepared `tfds.core.DatasetBuilder`:
- `source_dir` in the Oxford-IIIT Pet layout (`oxford`): `images.tar.gz` + `annotations.tar.gz` (the original
  archives, or the generated sample archives) or their extracted `images/` + `annotations/` folders, prepared by
  `LocalOxfordIIITPet` without network;
- `source_dir` in the `folders` layout: `images/<stem>.<jpg|png>` + `masks/<stem>.png` (single-channel class
  values or a palette PNG), split by `splits/train.txt` + `splits/eval.txt` (one stem a line) or, without them,
  by a deterministic hash of each stem (`eval_fraction` of them to eval);
- `source_dir` in the Pascal VOC layout (`voc`): `JPEGImages/`, `SegmentationClass/` (palette PNGs),
  `ImageSets/Segmentation/{train,val}.txt`;
- `data_dir` that already holds the prepared dataset: read as is;
- otherwise TFDS downloads and prepares as usual (needs network).

The `folders` and `voc` layouts are prepared by `LocalSegmentationFolders` into the TFDS splits `train` and
`test` (the eval list), with the same skip-and-count of unusable files and normalisation of odd image files
as Oxford's; their mask values are checked against the class description by ExampleGen.

The builder subclass must live in an importable module: TFDS resolves builders by module, and one
defined in `__main__` cannot be found again when the prepared data is read.
"""

import dataclasses
import hashlib
import io
import logging
import os
import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image
import tensorflow_datasets as tfds
from tensorflow_datasets.datasets.oxford_iiit_pet import oxford_iiit_pet_dataset_builder as oxford

OXFORD_PET_NAME = 'oxford_iiit_pet'
ARCHIVES = {'images': 'images.tar.gz', 'annotations': 'annotations.tar.gz'}
AUTO, OXFORD, FOLDERS, VOC = 'auto', 'oxford', 'folders', 'voc'
LAYOUTS = (AUTO, OXFORD, FOLDERS, VOC)
DEFAULT_EVAL_FRACTION = 0.2
_EVAL_LISTS = ('eval.txt', 'val.txt', 'test.txt')
SPAN_SPEC = '{SPAN}'


class DataSourceError(ValueError):
    """The configured data source cannot be read; the message says which path and what to do."""


def resolve_span(source_dir: Optional[str]) -> Tuple[Optional[str], Optional[int]]:
    """The newest span of a source whose last folder name holds `{SPAN}` (TFX's span spec), and its number.

    `/data/pets/span-{SPAN}` with `span-1/` and `span-2/` present is `/data/pets/span-2`, span 2: each span is a
    complete snapshot of the data in one of the layouts (`span-3.pending/`, still being labelled, does not match).

    Args:
      source_dir: the configured source directory, or None.

    Returns:
      (directory, span); `source_dir` and None when it names no span.

    Raises:
      DataSourceError: `{SPAN}` outside the last folder name, or no folder matching it.
    """
    if not source_dir or SPAN_SPEC not in source_dir:
        return source_dir, None
    parent, name = os.path.split(source_dir.rstrip('/'))
    if SPAN_SPEC in parent:
        raise DataSourceError(f'{source_dir!r}: {SPAN_SPEC} may only appear in the last folder name')
    pattern = re.compile('^' + re.escape(name).replace(re.escape(SPAN_SPEC), r'(\d+)') + '$')
    spans = {}
    for entry in (tf.io.gfile.listdir(parent) if tf.io.gfile.isdir(parent) else []):
        match = pattern.match(entry.rstrip('/'))
        if match and tf.io.gfile.isdir(os.path.join(parent, entry)):
            spans[int(match.group(1))] = os.path.join(parent, entry.rstrip('/'))
    if not spans:
        raise DataSourceError(f'No folder under {parent!r} matches {name!r} (a span folder such as '
                              f'{name.replace(SPAN_SPEC, "1")!r})')
    newest = max(spans)
    return spans[newest], newest


def source_layout(source_dir: str) -> str:
    """Tells whether `source_dir` holds the Oxford-IIIT Pet archives or their extracted folders.

    Args:
      source_dir: directory given as the local data source.

    Returns:
      'archives' or 'folders'.

    Raises:
      DataSourceError: the directory is missing, empty or holds neither layout.
    """
    if not tf.io.gfile.isdir(source_dir):
        raise DataSourceError(
            f'Data source directory {source_dir!r} does not exist. Pass a directory holding '
            f'images.tar.gz + annotations.tar.gz (or the extracted images/ and annotations/ '
            f'folders); `python -m components.tfds_example_gen.sample_data DIR` writes a sample one.')
    entries = set(tf.io.gfile.listdir(source_dir))
    entries = {e.rstrip('/') for e in entries}
    if all(name in entries for name in ARCHIVES.values()):
        return 'archives'
    if {'images', 'annotations'} <= entries:
        for folder in ('images', os.path.join('annotations', 'trimaps')):
            if not tf.io.gfile.isdir(os.path.join(source_dir, folder)):
                raise DataSourceError(f'{os.path.join(source_dir, folder)!r} is missing.')
        for listing in ('trainval.txt', 'test.txt'):
            path = os.path.join(source_dir, 'annotations', listing)
            if not tf.io.gfile.exists(path):
                raise DataSourceError(f'{path!r} is missing: the split lists name the images to read.')
        return 'folders'
    found = ', '.join(sorted(entries)) or 'nothing'
    raise DataSourceError(
        f'Data source directory {source_dir!r} holds {found}; expected images.tar.gz + '
        f'annotations.tar.gz or the folders images/ and annotations/ of Oxford-IIIT Pet, images/ + masks/ '
        f'(the folders layout) or JPEGImages/ + SegmentationClass/ (Pascal VOC).')


def detect_layout(source_dir: str, layout: str = AUTO) -> str:
    """The layout of `source_dir` (`oxford`, `folders` or `voc`), checked; `layout` names it or is `auto`.

    Raises:
      DataSourceError: the directory is missing, holds no known layout, or not the one named.
    """
    if layout not in LAYOUTS:
        raise DataSourceError(f'Unknown source layout {layout!r}; choose one of {LAYOUTS}')
    if tf.io.gfile.isdir(source_dir):
        entries = {e.rstrip('/') for e in tf.io.gfile.listdir(source_dir)}
        found = (VOC if {'JPEGImages', 'SegmentationClass'} <= entries else
                 FOLDERS if {'images', 'masks'} <= entries else None)
        if found and layout in (AUTO, found):
            return found
    if layout in (FOLDERS, VOC):
        wanted = 'images/ and masks/' if layout == FOLDERS else 'JPEGImages/ and SegmentationClass/'
        raise DataSourceError(f'Data source directory {source_dir!r} is not in the {layout} layout: it needs {wanted}.')
    source_layout(source_dir)
    return OXFORD


class _LocalFiles:
    """Stands in for TFDS's download manager: hands out local folders instead of downloads."""

    def __init__(self, source_dir: str, dl_manager: tfds.download.DownloadManager):
        self._source_dir = source_dir
        self._dl_manager = dl_manager

    def download_and_extract(self, urls: Dict[str, str]) -> Dict[str, str]:
        if source_layout(self._source_dir) == 'folders':
            return {key: self._source_dir for key in urls}
        archives = {key: os.path.join(self._source_dir, ARCHIVES[key]) for key in urls}
        return self._dl_manager.extract(archives)


class _LocalPairs:
    """Reads image/mask pairs from local files for a TFDS builder, keeping what it skipped and converted."""

    def _init_pairs(self) -> None:
        # (file, reason) of pairs left out, and (file, what was changed) of images converted while preparing.
        self.skipped: List[Tuple[str, str]] = []
        self.normalized: List[Tuple[str, str]] = []

    def _read_pair(self, name: str, image: str, mask: str, keep: Tuple[str, ...] = ('JPEG',)):
        """(image bytes, mask value for TFDS), or None when a file is missing or the mask is unusable."""
        missing = [path for path in (image, mask) if not tf.io.gfile.exists(path)]
        if missing:
            self.skipped.append((missing[0], 'missing file'))
            logging.warning('Skipping %s: %s is missing.', name, missing[0])
            return None
        with tf.io.gfile.GFile(image, 'rb') as f:
            image_bytes, note = normalize_image(f.read(), keep=keep)
        if note:
            self.normalized.append((image, note))
            logging.warning('%s: %s.', image, note)
        with tf.io.gfile.GFile(mask, 'rb') as f:
            mask_value, problem = read_mask(f.read())
        if problem:
            self.skipped.append((mask, problem))
            logging.warning('Skipping %s: %s.', name, problem)
            return None
        return image_bytes, mask_value


class LocalOxfordIIITPet(_LocalPairs, oxford.Builder, skip_registration=True):
    """Oxford-IIIT Pet (same name, version and features) prepared from local files, without network.

    Images or trimaps listed but missing or unusable are skipped and kept in `self.skipped` as (file,
    reason), so one lost file does not fail preparation of thousands; images of other kinds (the archive's
    GIF and RGBA PNG saved as .jpg) are converted and listed in `self.normalized`.
    """

    name = OXFORD_PET_NAME

    def __init__(self, *, source_dir: str, **kwargs):
        self._source_dir = source_dir
        self._init_pairs()
        super().__init__(**kwargs)

    def _split_generators(self, dl_manager):
        return super()._split_generators(_LocalFiles(self._source_dir, dl_manager))

    def _generate_examples(self, images_dir_path, annotations_dir_path, images_list_file):
        # TFDS's own generator re-encodes its list of known-odd files with tf.image.decode_image, which
        # crashes on the archive's GIF saved as .jpg (a 4-D animation). Here every image PIL can decode
        # that is not already an RGB JPEG is normalized instead; undecodable bytes pass through unchanged
        # so that ExampleGen's check names, counts and skips them.
        trimaps_dir = os.path.join(annotations_dir_path, 'trimaps')
        xmls_dir = os.path.join(annotations_dir_path, 'xmls')
        with tf.io.gfile.GFile(os.fspath(images_list_file)) as listing:
            for line in listing:
                if not line.strip() or line.startswith('#'):
                    continue
                name, label, species, _ = line.strip().split(' ')
                pair = self._read_pair(name, os.path.join(images_dir_path, name + '.jpg'),
                                       os.path.join(trimaps_dir, name + '.png'))
                if pair is None:
                    continue
                image_bytes, mask = pair
                try:
                    head_bbox = oxford._get_head_bbox(os.path.join(xmls_dir, name + '.xml'))  # pylint: disable=protected-access
                except FileNotFoundError:  # the test split has no head boxes
                    head_bbox = oxford._EMPTY_BBOX  # pylint: disable=protected-access
                yield name + '.jpg', {
                    'image': io.BytesIO(image_bytes),
                    'label': int(label) - 1,
                    'species': int(species) - 1,
                    'file_name': name + '.jpg',
                    'segmentation_mask': mask,
                    'head_bbox': head_bbox,
                }


class LocalSegmentationFolders(_LocalPairs, tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A folder of images and masks (`folders`) or a Pascal VOC export (`voc`) as a TFDS dataset, offline.

    Splits `train` and `test` (the eval list). Listed images without a mask (or masks without an image) are
    skipped and kept in `self.skipped` as (file, 'missing file'); masks that are not single-channel or palette
    images are skipped with the reason; images of other kinds than RGB JPEG/PNG are converted (`self.normalized`).
    """

    name = 'segmentation_folders'
    VERSION = tfds.core.Version('1.0.0')

    def __init__(self, *, source_dir: str, layout: str, eval_fraction: float = DEFAULT_EVAL_FRACTION, **kwargs):
        self._source_dir = source_dir
        self._layout = layout
        self._eval_fraction = eval_fraction
        self._init_pairs()
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(),
            'segmentation_mask': tfds.features.Image(shape=(None, None, 1)),
            'file_name': tfds.features.Text(),
        }))

    def _folders(self) -> Tuple[str, str, str]:
        if self._layout == VOC:
            return ('JPEGImages', 'SegmentationClass', os.path.join('ImageSets', 'Segmentation'))
        return 'images', 'masks', 'splits'

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(stems) for split, stems in split_stems(
            self._source_dir, self._layout, self._eval_fraction).items()}

    def _generate_examples(self, stems):
        images_dir, masks_dir, _ = (os.path.join(self._source_dir, folder) for folder in self._folders())
        images = _files_by_stem(images_dir)
        for stem in stems:
            image = images.get(stem, os.path.join(images_dir, stem + '.jpg'))
            pair = self._read_pair(stem, image, os.path.join(masks_dir, stem + '.png'), keep=('JPEG', 'PNG'))
            if pair is not None:
                yield stem, {'image': io.BytesIO(pair[0]), 'segmentation_mask': pair[1],
                             'file_name': os.path.basename(image)}


_IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif')


def _files_by_stem(directory: str) -> Dict[str, str]:
    files = {}
    for name in sorted(tf.io.gfile.listdir(directory)):
        stem, extension = os.path.splitext(name)
        if extension.lower() in _IMAGE_EXTENSIONS:
            files.setdefault(stem, os.path.join(directory, name))
    return files


def split_stems(source_dir: str, layout: str, eval_fraction: float = DEFAULT_EVAL_FRACTION) -> Dict[str, List[str]]:
    """{'train': stems, 'test': stems} of a `folders` or `voc` source: from its split lists, else (folders only)
    every image stem, `eval_fraction` of them to 'test' by a hash of the stem (stable as images are added).

    Raises:
      DataSourceError: a VOC export without its lists, or a split list without the other.
    """
    images_dir = os.path.join(source_dir, 'JPEGImages' if layout == VOC else 'images')
    lists_dir = os.path.join(source_dir, *(('ImageSets', 'Segmentation') if layout == VOC else ('splits',)))
    train_list = os.path.join(lists_dir, 'train.txt')
    eval_lists = [os.path.join(lists_dir, name) for name in _EVAL_LISTS]
    eval_list = next((path for path in eval_lists if tf.io.gfile.exists(path)), None)
    if tf.io.gfile.exists(train_list) or eval_list or layout == VOC:
        if not (tf.io.gfile.exists(train_list) and eval_list):
            raise DataSourceError(f'{lists_dir!r} needs train.txt and one of {", ".join(_EVAL_LISTS)} (one image '
                                  f'name without extension a line)' + ('' if layout == VOC else
                                                                       ', or no split lists at all'))
        return {'train': _read_list(train_list), 'test': _read_list(eval_list)}
    stems = sorted(_files_by_stem(images_dir))
    if not stems:
        raise DataSourceError(f'{images_dir!r} holds no images ({", ".join(_IMAGE_EXTENSIONS)}).')
    held = {stem for stem in stems
            if int(hashlib.sha256(stem.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < eval_fraction}
    return {'train': [s for s in stems if s not in held], 'test': [s for s in stems if s in held]}


def _read_list(path: str) -> List[str]:
    with tf.io.gfile.GFile(path) as f:
        return [line.split()[0] for line in f if line.strip() and not line.startswith('#')]


_SINGLE_CHANNEL_MODES = ('L', 'P', '1', 'I', 'I;16', 'I;16B', 'I;16L')


def normalize_image(data: bytes, keep: Tuple[str, ...] = ('JPEG',)) -> Tuple[bytes, Optional[str]]:
    """RGB JPEG bytes of an image file of any kind PIL reads, and what was changed (None: nothing).

    GIFs give their first frame, alpha is dropped, CMYK/grayscale/palette become RGB, 16-bit is scaled
    to 8 bits. Bytes PIL cannot decode are returned unchanged for ExampleGen's check to reject by name.

    Args:
      data: the file's bytes.
      keep: formats stored as they are when they hold RGB (PNG too for the folder layouts: no re-encoding loss).

    Returns:
      (bytes to store, a note such as 'GIF saved as .jpg: first frame, re-encoded as RGB JPEG').
    """
    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.seek(0)
            picture.load()
            kind, mode = picture.format, picture.mode
            if kind in keep and mode == 'RGB':
                return data, None
            if mode.startswith('I;16') or mode == 'I':
                array = np.asarray(picture).astype(np.uint32)
                picture = Image.fromarray((array >> (8 if array.max() > 255 else 0)).astype(np.uint8), 'L')
            rgb = picture.convert('RGB')
    except Exception:  # PIL raises many kinds for damaged files; ExampleGen's check names the problem.
        return data, None
    buffer = io.BytesIO()
    rgb.save(buffer, format='JPEG', quality=95)
    return buffer.getvalue(), f'{kind} {mode} image re-encoded as RGB JPEG' + (' (first frame)' if kind == 'GIF' else '')


def read_mask(data: bytes) -> Tuple[Any, Optional[str]]:
    """The mask's values (a palette PNG's indices) as uint8 [H, W, 1] for TFDS, or undecodable bytes as they are;
    and a reason to skip it.

    Args:
      data: the mask file's bytes.

    Returns:
      (value for the segmentation_mask feature, None) or (None, why it cannot be a mask).
    """
    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
            mode, size = picture.mode, picture.size
            array = np.asarray(picture)
    except Exception:  # a damaged trimap fails its pair in ExampleGen's check, named there
        return io.BytesIO(data), None
    if mode not in _SINGLE_CHANNEL_MODES:
        return None, f'mask has mode {mode}, expected a single-channel image or a palette PNG'
    if array.max(initial=0) > 255:
        return None, f'mask values up to {array.max()} do not fit 8 bits (0..255)'
    return array.astype(np.uint8).reshape(size[1], size[0], 1), None


def _split_name_and_version(dataset: str) -> Tuple[str, Optional[str]]:
    name, _, version = dataset.partition(':')
    return name, version or None


@dataclasses.dataclass(frozen=True)
class PreparedSource:
    """A prepared dataset to read, and the listed files that were missing when preparing it."""

    builder: tfds.core.DatasetBuilder
    missing_files: Tuple[str, ...] = ()
    # 'path: reason' of listed files that were skipped (unusable) or converted while preparing.
    skipped_files: Tuple[str, ...] = ()
    normalized_files: Tuple[str, ...] = ()


def prepare_builder(dataset: str, data_dir: Optional[str], source_dir: Optional[str],
                    work_dir: str, layout: str = AUTO, eval_fraction: float = DEFAULT_EVAL_FRACTION) -> PreparedSource:
    """Returns a prepared TFDS builder for the configured source.

    Args:
      dataset: TFDS name, optionally with a version spec (`oxford_iiit_pet:4.*.*`).
      data_dir: TFDS data directory to read from (or prepare into when downloading).
      source_dir: local files in one of the layouts above; takes precedence over `data_dir`.
      work_dir: scratch directory for preparing `source_dir` (extraction and prepared records).
      layout: `source_dir`'s layout, or `auto` to detect it (`detect_layout`).
      eval_fraction: the share of a `folders` source without split lists that becomes the eval split.

    Returns:
      A builder whose splits can be read (a plain read-only one, picklable for Beam workers).

    Raises:
      DataSourceError: unknown dataset, unreadable source, or no network for a download.
    """
    name, version = _split_name_and_version(dataset)
    if source_dir and detect_layout(source_dir, layout) != OXFORD:
        builder = LocalSegmentationFolders(source_dir=source_dir, layout=detect_layout(source_dir, layout),
                                           eval_fraction=eval_fraction, data_dir=work_dir)
        return _prepared(builder, work_dir)
    if source_dir:
        if name != OXFORD_PET_NAME:
            raise DataSourceError(
                f'source_dir is read as Oxford-IIIT Pet archives/folders, but dataset is {dataset!r}. '
                f'Prepare {name!r} with TFDS and pass its data_dir instead.')
        source_layout(source_dir)
        builder = LocalOxfordIIITPet(source_dir=source_dir, data_dir=work_dir)
        if version and not tfds.core.Version(str(builder.version)).match(version):
            raise DataSourceError(
                f'{dataset!r} asks for version {version}, but the local Oxford-IIIT Pet builder '
                f'of this TFDS is {builder.version}. Use {OXFORD_PET_NAME}:{builder.version}.')
        return _prepared(builder, work_dir)
    if data_dir and not tf.io.gfile.isdir(data_dir):
        raise DataSourceError(
            f'TFDS data_dir {data_dir!r} does not exist. Pass the directory that holds '
            f'{name}/<version>/ (TFDS prepares there), or create it to let TFDS download into it.')
    try:
        builder = tfds.builder(dataset, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DataSourceError(f'Unknown TFDS dataset {dataset!r}: {e}') from e
    except (AssertionError, ValueError) as e:
        raise DataSourceError(f'Cannot load TFDS dataset {dataset!r} from data_dir {data_dir!r}: {e}') from e
    if not builder.is_prepared():
        try:
            builder.download_and_prepare()
        except Exception as e:  # TFDS raises many kinds when offline; all mean the same to the user.
            raise DataSourceError(
                f'TFDS dataset {dataset!r} is not prepared in {builder.data_dir!r} and downloading it '
                f'failed ({type(e).__name__}: {e}). Without network, pass a data_dir that holds the '
                f'prepared dataset, or source_dir with images.tar.gz + annotations.tar.gz.') from e
    return PreparedSource(builder)


def _prepared(builder, work_dir: str) -> PreparedSource:
    """Prepares a local builder (its `skipped` and `normalized` lists filled) and returns it read-only."""
    builder.download_and_prepare(download_dir=os.path.join(work_dir, 'downloads'))
    missing = tuple(path for path, reason in builder.skipped if reason == 'missing file')
    skipped = tuple(f'{path}: {reason}' for path, reason in builder.skipped if reason != 'missing file')
    normalized = tuple(f'{path}: {note}' for path, note in builder.normalized)
    return PreparedSource(tfds.builder_from_directory(builder.data_dir), missing, skipped, normalized)


def check_features(builder: tfds.core.DatasetBuilder, image_feature: str, mask_feature: str) -> None:
    """Fails unless the dataset has an image feature and a segmentation-mask feature of those names.

    Args:
      builder: the dataset's builder.
      image_feature: name of the RGB image feature.
      mask_feature: name of the per-pixel class mask feature.

    Raises:
      DataSourceError: a feature is missing or is not an image.
    """
    features = builder.info.features
    for role, key in (('image', image_feature), ('segmentation mask', mask_feature)):
        if key not in features:
            raise DataSourceError(
                f'TFDS dataset {builder.name!r} has no {role} feature {key!r}; its features are '
                f'{sorted(features.keys())}. It needs an image and a segmentation mask; set the '
                f'feature names if they are called differently.')
        if not isinstance(features[key], tfds.features.Image):
            raise DataSourceError(
                f'Feature {key!r} of TFDS dataset {builder.name!r} is a {type(features[key]).__name__}, '
                f'not an Image, so it cannot be the {role}.')


def fingerprint(dataset: str, data_dir: Optional[str], source_dir: Optional[str]) -> str:
    """Summarises the source's files so that changed data misses the pipeline cache.

    Args:
      dataset: TFDS name and optional version spec.
      data_dir: TFDS data directory, or None for TFDS's default.
      source_dir: local Oxford-IIIT Pet archives or folders, if used.

    Returns:
      A string that changes when a file is added, removed, resized or touched.
    """
    if source_dir:
        root = source_dir
    else:
        try:
            root = tfds.builder(dataset, data_dir=data_dir).data_dir
        except Exception as e:  # The executor reports the real error with advice; here it only misses the cache.
            return f'{dataset}: unresolved ({type(e).__name__})'
    digest = hashlib.sha256()
    count = 0
    if tf.io.gfile.isdir(root):
        for directory, _, files in sorted(tf.io.gfile.walk(root)):
            for file_name in sorted(files):
                path = os.path.join(directory, file_name)
                stat = tf.io.gfile.stat(path)
                digest.update(f'{os.path.relpath(path, root)}\0{stat.length}\0{stat.mtime_nsec}\n'.encode())
                count += 1
    return f'{dataset} @ {root}: {count} files, sha256 {digest.hexdigest()}'
