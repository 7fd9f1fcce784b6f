"""The retraining story every end-to-end test reads: six LocalDagRunner runs of the smoke preset on generated pets.

1. first run: trains, the absolute bounds bless it, version 1 is pushed;
2. same data, warm start and an impossible bound: trains from run 1's model, the push is blocked (no TFLite
   export in this run: converting costs a minute and the blocked push is what it tests);
3. new data: retrains, is compared with run 1's blessed model, pushes version 2;
4. unchanged rerun: re-evaluates against the new baseline, publishes nothing new;
5. unchanged rerun again: every component is served from the cache;
6. the same model with an impossible serving latency budget: not pushed.

`scenario` is session-scoped, so the pipeline tests and the server tests share one story (~10 min).
"""

import dataclasses
import glob
import hashlib
import json
import os
import subprocess
import sys

import pytest
from tfx import v1 as tfx

from components.tfds_example_gen import sample_data
from modules import hparams, paths
from pipeline import config as config_lib, platform
from pipeline.local import run_summary
from pipeline.pipeline import create_pipeline


def tree_digest(root):
    digest = hashlib.sha256()
    for directory, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(directory, name)
            digest.update(os.path.relpath(path, root).encode() + open(path, 'rb').read())
    return digest.hexdigest()


@dataclasses.dataclass
class Scenario:
    config: config_lib.PipelineConfig
    root: str
    source_dir: str
    serving_dir: str
    summaries: list
    versions_after: list
    version_one_digest_before: str
    version_one_digest_after: str
    digests_before_six: dict
    digests_after_six: dict

    def training_job(self, out_dir, **training) -> dict:
        """`train_and_export`'s arguments on this story's Transform output, outputs laid out as the Trainer's
        (the backup goes to `<out_dir>/Trainer/backup`); `training` changes the smoke preset's settings (speed
        settings by their names, e.g. `mixed_bfloat16=False`)."""
        root = os.path.join(self.root, 'pipeline_root', 'Transform')
        transformed = paths.version_dir(os.path.join(root, 'transformed_examples'))
        speed = {name: training.pop(name) for name in list(training)
                 if name in {field.name for field in dataclasses.fields(hparams.SpeedConfig)}}
        settings = dataclasses.replace(self.config.training, **training).with_speed(**speed)
        return {'train': glob.glob(os.path.join(paths.split_dir(transformed, 'train'), '*')),
                'eval': glob.glob(os.path.join(paths.split_dir(transformed, 'eval'), '*')),
                'transform': paths.version_dir(os.path.join(root, 'transform_graph')),
                'serving': paths.serving_model_dir(os.path.join(out_dir, 'Trainer', 'model', '1')),
                'run': os.path.join(out_dir, 'Trainer', 'model_run', '1'),
                'training': hparams.TrainingConfig.to_custom_config(settings)}


def training_command(job: dict, setup: str = '') -> list:
    """A fresh Python process that runs `setup` (devices, strategy), then `train_and_export` on `job`; it prints
    its log and `EPOCHS <n>`."""
    script = '\n'.join([
        'import json, logging, os, sys',
        'os.environ["TF_USE_LEGACY_KERAS"] = "1"',
        'logging.basicConfig(level=logging.INFO, format="%(message)s")',
        setup,
        'from modules import hparams, train',
        'args = json.loads(sys.argv[1])',
        'history = train.train_and_export(args["train"], args["eval"], args["transform"], args["serving"], '
        'args["run"], hparams.from_custom_config(args))',
        'print("EPOCHS", len(history.get("loss", [])))'])
    return [sys.executable, '-c', script, json.dumps(job)]


def train_in_process(job: dict, setup: str = '') -> str:
    """Runs `training_command(job, setup)` to the end and returns its output; fails the test, with the output's
    tail, if the process fails."""
    done = subprocess.run(training_command(job, setup), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]
    return done.stdout


def _run(config, root, serving_dir):
    pipeline = create_pipeline(
        config,
        pipeline_root=os.path.join(root, 'pipeline_root'),
        serving_dir=serving_dir,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, 'metadata.db')),
        beam_pipeline_args=platform.direct_beam_args(1),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return run_summary.read_run_summary(os.path.join(root, 'metadata.db'), config.name)


def with_settings(config, **sections):
    return dataclasses.replace(config, **{name: dataclasses.replace(getattr(config, name), **values)
                                          for name, values in sections.items()})


@pytest.fixture(scope='session')
def scenario(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('e2e'))
    source_dir, serving_dir = os.path.join(root, 'pets'), os.path.join(root, 'serving')
    sample_data.write_folders(source_dir, 14, 6, seed=2)
    config = with_settings(config_lib.preset('smoke'), data={'source_dir': source_dir, 'sample': None})
    summaries, versions = [], []

    summaries.append(_run(config, root, serving_dir))
    versions.append(sorted(os.listdir(serving_dir)))
    version_one = os.path.join(serving_dir, versions[0][0])
    digest_before = tree_digest(version_one)

    # Warm start makes the Trainer rerun (its base model is a new input); the bound blocks the push.
    blocked = with_settings(config, evaluation={'min_pixel_accuracy': 1.0}, training={'warm_start': True},
                            tflite={'tflite_variants': ()})
    summaries.append(_run(blocked, root, serving_dir))
    versions.append(sorted(os.listdir(serving_dir)))

    sample_data.write_folders(source_dir, 18, 6, seed=2)  # four more training images
    summaries.append(_run(config, root, serving_dir))
    versions.append(sorted(os.listdir(serving_dir)))

    summaries.append(_run(config, root, serving_dir))
    versions.append(sorted(os.listdir(serving_dir)))
    summaries.append(_run(config, root, serving_dir))
    versions.append(sorted(os.listdir(serving_dir)))
    digests_before_six = {v: tree_digest(os.path.join(serving_dir, v)) for v in versions[-1]}

    too_slow = with_settings(config, serving={'latency_budget_ms': 0.001})  # no model answers in a microsecond
    summaries.append(_run(too_slow, root, serving_dir))
    versions.append(sorted(os.listdir(serving_dir)))
    digests_after_six = {v: tree_digest(os.path.join(serving_dir, v)) for v in versions[-1]}
    return Scenario(config, root, source_dir, serving_dir, summaries, versions, digest_before, tree_digest(version_one),
                    digests_before_six, digests_after_six)


