"""modules.train helpers: which precision training uses, the float32 model it exports, its progress lines."""

import dataclasses
import logging

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from modules import callbacks, classes, hparams, layers, model as model_lib, precision, train


@pytest.mark.parametrize('setting', [True, False])
def test_an_explicit_precision_wins_over_the_hardware(setting, monkeypatch):
    monkeypatch.setattr(precision, 'native_bfloat16', lambda: not setting)
    training = hparams.TrainingConfig().with_speed(mixed_bfloat16=setting)
    assert train.use_mixed_bfloat16(training) is setting


@pytest.mark.parametrize('native', [True, False])
def test_unset_precision_follows_the_hardware(native, monkeypatch):
    monkeypatch.setattr(precision, 'native_bfloat16', lambda: native)
    assert train.use_mixed_bfloat16(hparams.TrainingConfig()) is native


@pytest.mark.parametrize('flags, native', [
    (['fpu', 'avx2', 'avx512f', 'amx_bf16', 'amx_tile'], True),   # Intel with AMX
    (['fpu', 'avx2', 'avx512f', 'avx512_bf16'], None),            # AMD Zen 4: bfloat16 without tiles, measured
    (['fpu', 'avx', 'avx2', 'fma'], False),                       # no bfloat16 in hardware
])
def test_native_bfloat16_reads_cpu_flags(flags, native):
    assert precision.native_bfloat16(cpu_flags=flags) is native


def test_an_unsettled_cpu_trains_in_the_precision_its_measurement_picks(monkeypatch):
    # AVX512-BF16 without AMX: native_bfloat16 says neither; the real models of both precisions are measured.
    monkeypatch.setattr(precision, 'native_bfloat16', lambda: None)
    built = []

    def measured(build, batch_size):
        built.extend(model_lib.computes_in_float32(build(mixed)) for mixed in (False, True))
        return True
    monkeypatch.setattr(precision, 'faster_in_bfloat16', measured)
    training = dataclasses.replace(hparams.TrainingConfig(), batch_size=2, seed=7)
    train._measured_bfloat16.cache_clear()
    try:
        assert train.use_mixed_bfloat16(training) is True
        assert built == [True, False], 'a float32 and a mixed bfloat16 model were built and measured'
        assert train.use_mixed_bfloat16(dataclasses.replace(training, learning_rate=0.01)) is True
        assert len(built) == 2, 'measured once for settings that train at the same speed (a Tuner\'s trials)'
        assert train.use_mixed_bfloat16(training, measure=False) is False, 'no measurement: float32'
    finally:
        train._measured_bfloat16.cache_clear()  # the stub's answer must not outlive this test


@pytest.mark.slow
def test_measuring_the_unet_agrees_with_the_hardware_where_it_settles_the_precision():
    native = precision.native_bfloat16()
    if native is None:
        pytest.skip('AVX512-BF16 without AMX: the measurement is the only judge here')
    training = dataclasses.replace(hparams.TrainingConfig(), batch_size=8)
    faster = precision.faster_in_bfloat16(lambda mixed: train.build_model(
        training.with_speed(mixed_bfloat16=mixed)), training.batch_size)
    assert faster is native, 'AMX: bfloat16 is faster; without bfloat16 instructions it is emulated and slower'


@pytest.mark.parametrize('mixed, subpixel, configured, used', [
    (True, False, None, True),      # unset: the GEMM form where training computes in bfloat16
    (False, False, None, False),    # ... and the stock layer in float32
    (True, True, None, False),      # ... unless the sub-pixel form is asked for
    (False, False, True, True),     # set: as configured
    (True, False, False, False),
])
def test_gemm_upsampling_follows_the_precision_unless_configured(mixed, subpixel, configured, used):
    training = hparams.TrainingConfig().with_speed(subpixel_upsampling=subpixel, gemm_upsampling=configured,
                                                   mixed_bfloat16=mixed)
    effective, decided = train.effective_settings(training)
    assert effective.speed.gemm_upsampling is used and ('speed.gemm_upsampling' in decided) is (configured is None)
    assert train.effective_settings(effective) == (effective, {}), 'deciding again changes nothing'


@pytest.mark.parametrize('subpixel, configured, used', [
    (False, None, True),     # unset: the split form
    (True, None, False),     # ... unless the sub-pixel form computes the logits layer
    (False, False, False),   # set: as configured
])
def test_split_skip_logits_is_on_unless_configured_or_the_subpixel_form_is_asked_for(subpixel, configured, used):
    training = hparams.TrainingConfig().with_speed(subpixel_upsampling=subpixel, split_skip_logits=configured)
    assert train.effective_settings(training)[0].speed.split_skip_logits is used
    logits = train.build_model(training.with_speed(mixed_bfloat16=False)).get_layer('logits')
    assert isinstance(logits, layers.SplitSkipConv2DTranspose) is used


def _gemm_layers(model):
    return [layer for layer in model_lib.all_layers(model) if isinstance(layer, layers.GemmConv2DTranspose)]


def test_a_bfloat16_trained_model_is_exported_as_a_float32_twin():
    training = hparams.TrainingConfig().with_speed(mixed_bfloat16=True)
    model = train.build_model(training)
    twin = train.float32_twin(model, training)
    assert twin is not model
    assert len(_gemm_layers(model)) == 2 and not _gemm_layers(twin), 'the export has the stock layers'
    assert {layer.compute_dtype for layer in twin.get_layer('encoder').layers} == {'float32'}
    images = np.random.default_rng(1).random((1, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, 3), 'float32')
    assert np.mean(np.argmax(model(images), -1) == np.argmax(twin(images), -1)) > 0.95


def test_a_float32_export_warm_starts_a_bfloat16_model_with_all_its_weights(tmp_path):
    # the mixed model has one more (weightless) layer, the float32 cast of its logits: no weight may be skipped
    # and the export has the stock layers (float32_twin) where the warm-started model has rewritten ones
    training = hparams.TrainingConfig().with_speed(mixed_bfloat16=False)
    exported = train.float32_twin(train.build_model(training), training)
    assert not model_lib.has_rewritten_layers(exported)
    exported.save(str(tmp_path / 'model'), save_format='tf', include_optimizer=False, save_traces=False)
    warm = train.build_model(training.with_speed(mixed_bfloat16=True), base_model=str(tmp_path / 'model'))
    assert isinstance(warm.get_layer('logits'), layers.SplitSkipConv2DTranspose)
    for ours, theirs in zip(warm.weights, exported.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.name)


@pytest.mark.parametrize('rewrite', ['gemm_upsampling', 'subpixel_upsampling', 'split_skip_logits'])
def test_a_float32_model_with_rewritten_layers_is_exported_with_the_stock_ones(rewrite):
    training = hparams.TrainingConfig().with_speed(mixed_bfloat16=False, **{rewrite: True})
    model = train.build_model(training)
    twin = train.float32_twin(model, training)
    assert model_lib.has_rewritten_layers(model) and not model_lib.has_rewritten_layers(twin)
    images = np.random.default_rng(2).random((1, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, 3), 'float32')
    np.testing.assert_allclose(twin(images).numpy(), model(images).numpy(), atol=1e-4, rtol=1e-4)


def test_a_float32_model_is_exported_as_is():
    training = hparams.TrainingConfig().with_speed(mixed_bfloat16=False, split_skip_logits=False)
    model = train.build_model(training)
    assert train.float32_twin(model, training) is model


def test_the_trainers_adam_updates_weights_as_keras_adam_does():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(4, 3)).astype('float32')
    gradients = [rng.normal(size=(4, 3)).astype('float32') for _ in range(6)]
    updated = {}
    for name, optimizer in {'trainer': train.optimizer(0.01), 'keras': keras.optimizers.Adam(0.01)}.items():
        variable = tf.Variable(start)
        for step, gradient in enumerate(gradients):
            if step == 3:
                keras.backend.set_value(optimizer.lr, 0.002)  # what LearningRateScheduler does between epochs
            optimizer.apply_gradients([(tf.constant(gradient), variable)])
        updated[name] = variable.numpy()
    assert not np.allclose(updated['trainer'], start)
    np.testing.assert_allclose(updated['trainer'], updated['keras'], rtol=1e-5, atol=1e-7)


def test_epoch_progress_logs_one_line_per_epoch(caplog):
    progress = callbacks.EpochProgress(epochs=12)
    with caplog.at_level(logging.INFO, logger=hparams.PROGRESS_LOGGER):
        progress.on_epoch_begin(2)
        progress.on_epoch_end(2, {'loss': 0.5, 'val_pixel_accuracy': 0.91234, 'iou_pet': 0.7})
    assert [r.getMessage().split(' (')[0] for r in caplog.records] == ['epoch 3/12']
    assert 'loss 0.5000' in caplog.text and 'val_pixel_accuracy 0.9123' in caplog.text and 'iou_pet' not in caplog.text


def test_learning_rate_warms_up_then_follows_a_cosine_to_nearly_zero():
    training = hparams.TrainingConfig(epochs=12, learning_rate=0.002, lr_schedule='cosine', warmup_epochs=2)
    rates = [callbacks.learning_rate_at(training, epoch) for epoch in range(12)]
    assert rates[:3] == [0.001, 0.002, 0.002]
    assert all(a > b for a, b in zip(rates[2:], rates[3:])) and rates[-1] < 0.0001
    constant = hparams.TrainingConfig(epochs=12, learning_rate=0.002, warmup_epochs=2)
    assert [callbacks.learning_rate_at(constant, epoch) for epoch in (0, 1, 5, 11)] == [0.001, 0.002, 0.002, 0.002]
    assert callbacks.training_callbacks(hparams.TrainingConfig()) == [], 'nothing asked, nothing added'


def test_the_best_epochs_weights_are_kept_even_when_training_runs_to_the_end():
    import tf_keras as keras
    model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
    best = callbacks.BestWeights(patience=5)
    best.set_model(model)
    best.on_train_begin()
    first = [w.copy() for w in model.get_weights()]
    best.on_epoch_end(0, {'val_mean_iou': 0.5})
    model.set_weights([w + 1.0 for w in first])
    best.on_epoch_end(1, {'val_mean_iou': 0.4})
    best.on_train_end()
    assert best.stopped_epoch == 0, 'no early stop'
    for kept, wanted in zip(model.get_weights(), first):
        np.testing.assert_array_equal(kept, wanted)


def _early_stopping_run(model, scores, state_dir, first_epoch=0, patience=3):
    """Feeds `scores` as the epochs' val_mean_iou, giving the model new weights each epoch, as fit would."""
    best = callbacks.BestWeights(patience=patience, state_dir=state_dir)
    best.set_model(model)
    best.on_train_begin()
    for epoch, score in enumerate(scores, start=first_epoch):
        best.on_epoch_begin(epoch)
        model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
        best.on_epoch_end(epoch, {'val_mean_iou': score})
        if model.stop_training:
            break
    best.on_train_end()
    return best


def test_early_stopping_resumes_with_its_best_epoch_and_count(tmp_path):
    import tf_keras as keras
    scores = [0.5, 0.7, 0.6, 0.65, 0.6, 0.6, 0.9]
    whole = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
    uninterrupted = _early_stopping_run(whole, scores, str(tmp_path / 'whole'))
    assert (uninterrupted.best_epoch, uninterrupted.stopped_epoch) == (1, 4)

    resumed_model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
    _early_stopping_run(resumed_model, scores[:3], str(tmp_path / 'killed'))  # killed after epoch 3
    resumed = _early_stopping_run(resumed_model, scores[3:], str(tmp_path / 'killed'), first_epoch=3)
    assert (resumed.best, resumed.best_epoch, resumed.stopped_epoch) == (0.7, 1, 4), 'as if never killed'
    for kept, wanted in zip(resumed_model.get_weights(), whole.get_weights()):
        np.testing.assert_array_equal(kept, wanted)
    assert np.all(resumed_model.get_weights()[0] == 1), "the weights of epoch 2, saved before the kill"

    forgetful = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
    _early_stopping_run(forgetful, scores[:3], None)
    fresh = _early_stopping_run(forgetful, scores[3:], None, first_epoch=3)
    assert fresh.best_epoch == 6, 'without a state directory the count starts afresh (what the state fixes)'


def test_tuned_values_replace_the_configured_ones_and_unknown_names_are_refused():
    training = hparams.TrainingConfig(learning_rate=0.001, dropout=0.0)
    tuned = hparams.with_hyperparameters(training, {'learning_rate': 0.0005, 'augment_strength': 0.5})
    assert (tuned.learning_rate, tuned.augmentation.strength, tuned.dropout) == (0.0005, 0.5, 0.0)
    assert hparams.tuned_values(tuned) == {'learning_rate': 0.0005, 'dropout': 0.0, 'batchnorm_momentum': None,
                                          'augment_strength': 0.5}
    assert hparams.with_hyperparameters(training, None) is training
    with pytest.raises(ValueError, match='epochs are not tunable'):
        hparams.with_hyperparameters(training, {'epochs': 3})


@pytest.mark.parametrize('first, then', [(True, False), (False, True)])
def test_a_backup_resumes_when_the_measured_precision_comes_out_otherwise(first, then, tmp_path):
    # The backup directory's digest is taken from the configured settings, so a rerun where the measurement picks
    # the other precision (and the other form of the small transposed convolutions) resumes from the same backup.
    rng = np.random.default_rng(3)
    images = rng.random((2, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, 3), 'float32')
    masks = rng.integers(0, classes.OXFORD_IIIT_PET.num_classes, (2, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, 1))
    backup = str(tmp_path / 'backup')
    killed = train.build_model(hparams.TrainingConfig().with_speed(mixed_bfloat16=first))
    killed.fit(images, masks, batch_size=2, epochs=1, verbose=0,
               callbacks=[keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False)])
    rerun = train.build_model(hparams.TrainingConfig().with_speed(mixed_bfloat16=then))
    assert len(_gemm_layers(killed if first else rerun)) == 2, 'the bfloat16 side has the GEMM layers'
    epochs = []
    rerun.fit(images, masks, batch_size=2, epochs=1, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False),
                         keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(epoch))])
    assert epochs == [], 'the finished epoch was not trained again'
    assert int(rerun.optimizer.iterations) == 1
    rerun.optimizer._create_all_weights(rerun.trainable_variables)  # Adam's slots are restored as they are made
    for name, ours, theirs in (('weights', rerun.weights, killed.weights),
                               ('Adam state', rerun.optimizer.weights, killed.optimizer.weights)):
        assert len(ours) == len(theirs) > 1, name
        for restored, saved in zip(ours, theirs):
            np.testing.assert_array_equal(restored.numpy(), saved.numpy(), err_msg=f'{name}: {restored.name}')
