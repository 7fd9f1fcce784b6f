"""Batch segmentation on Beam's DirectRunner with the model the e2e scenario pushed (tests/scenario.py)."""

import csv
import glob
import io
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

from components.tfds_example_gen import sample_data
from modules import batch_predict, beam_args, classes, keys, paths, request_log

pytestmark = pytest.mark.e2e


@pytest.fixture(scope='module')
def photo_folder(tmp_path_factory):
    """Generated pets of their own sizes, a GIF, an RGBA PNG named .jpg, a corrupt and an empty file."""
    root = str(tmp_path_factory.mktemp('batch_in'))
    sample_data.write_folders(root, 5, 1, seed=4)
    folder = os.path.join(root, 'images')
    first = sorted(glob.glob(os.path.join(folder, '*.jpg')))[0]
    with Image.open(first) as picture:
        picture.convert('RGB').save(os.path.join(folder, 'animated.gif'))
        buffer = io.BytesIO()
        picture.convert('RGBA').save(buffer, format='PNG')
    with open(os.path.join(folder, 'rgba_png.jpg'), 'wb') as f:
        f.write(buffer.getvalue())
    with open(os.path.join(folder, 'corrupt.jpg'), 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 this is not a JPEG')
    open(os.path.join(folder, 'empty.png'), 'wb').close()
    return folder


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize('workers', [1, 2])
def test_folder_gives_full_size_masks_shares_and_a_skip_list(scenario, photo_folder, tmp_path, workers):
    out = io.StringIO()
    result = batch_predict.run([photo_folder], scenario.serving_dir, str(tmp_path), beam_args.direct_beam_args(workers),
                               batch_size=3, progress_every_s=0.5, out=out)
    images = sorted(f for f in os.listdir(photo_folder) if f not in ('corrupt.jpg', 'empty.png'))
    assert result == {'images': len(images) + 2, 'segmented': len(images), 'skipped': 2}
    skipped = {row['image']: row['reason'] for row in _rows(tmp_path / 'skipped.csv')}
    assert set(skipped) == {'corrupt', 'empty'} and skipped['empty'] == 'empty file'
    assert skipped['corrupt'].startswith('jpeg::Uncompress failed. Invalid JPEG data'), skipped['corrupt']
    shares = {row['image']: row for row in _rows(tmp_path / 'shares.csv')}
    assert set(shares) == {os.path.splitext(f)[0] for f in images}
    for name in images:
        stem = os.path.splitext(name)[0]
        with Image.open(os.path.join(photo_folder, name)) as picture:
            width, height = picture.size
        mask = np.asarray(Image.open(tmp_path / 'masks' / f'{stem}.png'))
        assert mask.shape == (height, width), name
        assert set(np.unique(mask)) <= {0, 1, 2}
        row = shares[stem]
        assert (int(row['height']), int(row['width'])) == (height, width)
        counts = np.bincount(mask.ravel(), minlength=3) / mask.size
        assert [float(row[c]) for c in ('pet', 'background', 'border')] == pytest.approx(counts, abs=1e-4)
    console = out.getvalue()
    assert f'/{len(images) + 2} images segmented' in console and 'SKIPPED corrupt:' in console


def test_tfrecords_of_examples_are_read_with_their_file_names(scenario, tmp_path):
    records = glob.glob(os.path.join(scenario.root, 'pipeline_root', 'TfdsExampleGen', 'examples', '*', 'Split-eval',
                                     '*.gz'))[:1]
    result = batch_predict.run(records, scenario.serving_dir, str(tmp_path), beam_args.direct_beam_args(1),
                               out=io.StringIO())
    assert result == {'images': 6, 'segmented': 6, 'skipped': 0}
    names = sorted(row['image'] for row in _rows(tmp_path / 'shares.csv'))
    assert sorted(os.path.splitext(f)[0] for f in os.listdir(tmp_path / 'masks')) == names
    assert all('_' in name for name in names), f'named after the examples\' file_name, got {names}'


def test_a_batch_job_logs_its_images_for_the_monitor_as_the_server_does(scenario, tmp_path):
    records = glob.glob(os.path.join(scenario.root, 'pipeline_root', 'TfdsExampleGen', 'examples', '*', 'Split-eval',
                                     '*.gz'))[:1]
    log_dir = str(tmp_path / 'log')
    batch_predict.run(records, scenario.serving_dir, str(tmp_path / 'out'), beam_args.direct_beam_args(1),
                      out=io.StringIO(), log_dir=log_dir, log_sample_rate=1.0)
    logged = [tf.train.Example.FromString(r).features.feature for path in request_log.log_files(log_dir)
              for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]
    written = sorted((int(row['height']), int(row['width']), float(row['pet']))
                     for row in _rows(tmp_path / 'out' / 'shares.csv'))
    assert len(logged) == 6
    seen = sorted((f[keys.IMAGE_HEIGHT_KEY].int64_list.value[0], f[keys.IMAGE_WIDTH_KEY].int64_list.value[0],
                   f['pet_fraction'].float_list.value[0]) for f in logged)
    for (height, width, share), (logged_height, logged_width, fraction) in zip(written, seen):
        assert (height, width) == (logged_height, logged_width) and fraction == pytest.approx(share, abs=1e-4)
    newest = paths.numbered_versions(scenario.serving_dir)[-1]
    assert {f[request_log.MODEL_VERSION_KEY].int64_list.value[0] for f in logged} == {newest}


def test_inputs_that_match_nothing_are_named():
    with pytest.raises(FileNotFoundError, match='No images or TFRecords match'):
        batch_predict.list_inputs(['/nonexistent/*.jpg'])


def test_colliding_stems_keep_their_extensions():
    names = batch_predict.mask_names(['a/cat.jpg', 'b/cat.png', 'c/dog.jpg'])
    assert names == {'a/cat.jpg': 'cat_jpg', 'b/cat.png': 'cat_png', 'c/dog.jpg': 'dog'}


DATAFLOW = {'dataflow_project': 'my-project', 'dataflow_region': 'europe-west4', 'temp_location': 'gs://bucket/tmp',
            'image': 'europe-docker.pkg.dev/my-project/pets/petseg:1'}
DATAFLOW_FLAGS = [part for flag, value in DATAFLOW.items() for part in (f'--{flag}', value)]


def _model_classes_only(tmp_path):
    # The launcher reads the model's classes to name shares.csv's columns; Dataflow's dry run opens nothing else.
    model = str(tmp_path / 'model')
    classes.write_to_model(model, classes.OXFORD_IIIT_PET, classes.DEFAULT_IMAGE_SIZE)
    open(os.path.join(model, 'saved_model.pb'), 'wb').close()  # never loaded in a dry run
    return model


def test_the_dataflow_form_compiles_to_a_job_on_the_pipeline_image(photo_folder, tmp_path):
    # Beam's dry run builds the Dataflow job (every step's function pickled into the portable pipeline) and
    # stops before staging or submitting it: no cloud is reached.
    images, _ = batch_predict.list_inputs([photo_folder])
    pipeline = beam.Pipeline(options=PipelineOptions(
        beam_args.dataflow_beam_args(project=DATAFLOW['dataflow_project'], region=DATAFLOW['dataflow_region'],
                                     temp_location=DATAFLOW['temp_location'], image=DATAFLOW['image'])
        + ['--dry_run=True']))
    batch_predict.build_pipeline(pipeline, images, ['gs://bucket/records/eval.tfrecord.gz'],
                                 _model_classes_only(tmp_path), 'gs://bucket/out')
    result = pipeline.run()
    assert result.job.proto.type.name == 'JOB_TYPE_BATCH'
    proto = pipeline.runner.proto_pipeline
    steps = {transform.unique_name for transform in proto.components.transforms.values()}
    assert {'ReadImages', 'ParseExamples', 'Segment', 'WriteMasks', 'WriteShares', 'WriteSkipped'} <= steps
    [environment] = proto.components.environments.values()
    assert environment.urn == 'beam:env:docker:v1'
    assert DATAFLOW['image'].encode() in environment.payload


def test_the_command_line_sends_the_job_to_dataflow_only_with_all_four_flags(photo_folder, tmp_path, capsys):
    model = _model_classes_only(tmp_path)
    argv = ['--inputs', photo_folder, '--model', model, '--output_dir', str(tmp_path / 'out')]
    assert batch_predict.main(argv + DATAFLOW_FLAGS + ['--dry_run=True']) == 0
    assert f'Model: {model}' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        batch_predict.main(argv + DATAFLOW_FLAGS[:4])
    assert 'Dataflow needs --dataflow_project, --dataflow_region, --temp_location and --image' in capsys.readouterr().err
