"""modules.train helpers: which precision training uses, the float32 model it exports, its progress lines."""

import dataclasses
import logging

import numpy as np
import pytest

from modules import hparams, keys, model as model_lib, train


@pytest.mark.parametrize('setting', [True, False])
def test_an_explicit_precision_wins_over_the_hardware(setting, monkeypatch):
    monkeypatch.setattr(model_lib, 'native_bfloat16', lambda: not setting)
    training = dataclasses.replace(hparams.TrainingConfig(), mixed_bfloat16=setting)
    assert train.use_mixed_bfloat16(training) is setting


@pytest.mark.parametrize('native', [True, False])
def test_unset_precision_follows_the_hardware(native, monkeypatch):
    monkeypatch.setattr(model_lib, 'native_bfloat16', lambda: native)
    assert train.use_mixed_bfloat16(hparams.TrainingConfig()) is native


@pytest.mark.parametrize('flags, native', [
    (['fpu', 'avx2', 'avx512f', 'amx_bf16', 'amx_tile'], True),   # Intel with AMX
    (['fpu', 'avx2', 'avx512f', 'avx512_bf16'], False),           # AMD Zen 4: measured no faster in bfloat16
    (['fpu', 'avx', 'avx2', 'fma'], False),                       # no bfloat16 in hardware
])
def test_native_bfloat16_reads_cpu_flags(flags, native):
    assert model_lib.native_bfloat16(cpu_flags=flags) is native


def test_a_bfloat16_trained_model_is_exported_as_a_float32_twin():
    training = dataclasses.replace(hparams.TrainingConfig(), mixed_bfloat16=True)
    model = train.build_model(training)
    twin = train.float32_twin(model, training)
    assert twin is not model
    assert {layer.compute_dtype for layer in twin.get_layer('encoder').layers} == {'float32'}
    images = np.random.default_rng(1).random((1, keys.IMAGE_SIZE, keys.IMAGE_SIZE, 3), 'float32')
    assert np.mean(np.argmax(model(images), -1) == np.argmax(twin(images), -1)) > 0.95


def test_a_float32_model_is_exported_as_is():
    training = dataclasses.replace(hparams.TrainingConfig(), mixed_bfloat16=False)
    model = train.build_model(training)
    assert train.float32_twin(model, training) is model


def test_epoch_progress_logs_one_line_per_epoch(caplog):
    progress = train.EpochProgress(epochs=12)
    with caplog.at_level(logging.INFO, logger=hparams.PROGRESS_LOGGER):
        progress.on_epoch_begin(2)
        progress.on_epoch_end(2, {'loss': 0.5, 'val_pixel_accuracy': 0.91234, 'iou_pet': 0.7})
    assert [r.getMessage().split(' (')[0] for r in caplog.records] == ['epoch 3/12']
    assert 'loss 0.5000' in caplog.text and 'val_pixel_accuracy 0.9123' in caplog.text and 'iou_pet' not in caplog.text
