"""The Trainer on a CPU whose hardware does not settle the precision (AVX512-BF16 without AMX).

No such CPU here, so a fresh process is told `native_bfloat16` has no answer; `train_and_export` then measures
both precisions of the real U-Net on this machine, trains in the one it picked and records it. Uses the
Transform output of the e2e scenario (tests/scenario.py).
"""

import json
import os
import re

import pytest

from modules import train
from tests.scenario import train_in_process

pytestmark = pytest.mark.e2e

UNSETTLED_HARDWARE = """from modules import precision
precision.native_bfloat16 = lambda cpu_flags=None: None"""


def test_the_trainer_measures_the_precision_trains_in_it_and_records_it(scenario, tmp_path):
    args = scenario.training_job(str(tmp_path), epochs=1, batch_size=2, steps_per_epoch=2, validation_steps=1,
                                 mixed_bfloat16=None)
    output = train_in_process(args, UNSETTLED_HARDWARE)
    measured = re.search(r'Precision measured \(batch 2, 3 steps each\): .* training in (mixed bfloat16|float32)',
                         output)
    assert measured, output[-4000:]
    mixed = measured.group(1) == 'mixed bfloat16'
    assert f'Training computes in {measured.group(1)}' in output
    trained = json.load(open(os.path.join(args['run'], train.TRAINED_SETTINGS_FILE)))
    assert trained['speed']['mixed_bfloat16'] is mixed, 'training.json records the precision used, not None'
    assert trained['decided']['speed.mixed_bfloat16'].startswith('measured'), trained['decided']
    assert trained['train_encoder'] is True and 'always trained' in trained['decided']['train_encoder']
    assert output.count('Precision measured') == 1, 'decided once'
    assert 'EPOCHS 1' in output and os.path.isdir(args['serving'])
