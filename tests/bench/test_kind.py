"""bench.kind: the steps a session on a new CPU kind runs, in order, with the cap only where it emulates."""

import pytest
import tf_keras as keras

from bench import kind


def _program(argv):
    """The module (`-m NAME`) or script a command runs."""
    return argv[2] if argv[1] == '-m' else argv[1]


def test_the_pretrained_encoder_is_made_before_the_benchmark_that_loads_it(tmp_path):
    planned = kind.commands(str(tmp_path))
    modules = [_program(argv) for _, argv, _ in planned]
    assert modules == ['bench.run', 'bench.train_speed', 'bench.time_to_quality',
                       'components.tfds_example_gen.sample_data', 'local_runner.py', 'bench.encoder_weights',
                       'bench.time_to_quality', 'bench.report']
    encoder = str(tmp_path / 'encoder_seed1.h5')
    assert planned[5][1][-1] == encoder and planned[6][1][-2:] == ['--encoder_weights', encoder]
    assert '--seed' in planned[3][1] and planned[3][1][planned[3][1].index('--seed') + 1] == '1', 'other images'
    assert all(env == {} for _, _, env in planned)


def test_an_encoder_already_made_is_reused(tmp_path):
    (tmp_path / 'encoder_seed1.h5').write_bytes(b'')
    assert kind.commands(str(tmp_path), steps=['encoder']) == []


def test_emulating_caps_every_measurement_and_leaves_out_the_bfloat16_control(tmp_path):
    planned = kind.commands(str(tmp_path), emulate_no_bf16=True)
    for step, argv, env in planned:
        measured = step not in ('encoder', 'report')
        assert (env == {'ONEDNN_MAX_CPU_ISA': 'AVX2'}) == measured, step
        if 'bench.time_to_quality' in argv:
            assert argv[argv.index('--sides') + 1:argv.index('--sides') + 3] == ['tutorial', 'project']


def test_dry_run_prints_the_commands_without_running_them(tmp_path, capsys):
    kind.main(['--dry_run', '--emulate_no_bf16', '--work_dir', str(tmp_path)])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith('[run] ONEDNN_MAX_CPU_ISA=AVX2 python') and 'bench.run' in printed[0]
    assert not any(line.startswith('[train_speed]') for line in printed), 'not under the cap unless asked for'
    assert printed[-1].startswith('[report]')
    assert not (tmp_path / 'encoder_seed1.h5').exists()


@pytest.mark.slow
@pytest.mark.e2e
def test_the_encoder_step_leaves_an_encoder_that_loads(tmp_path):
    kind.main(['--steps', 'encoder', '--work_dir', str(tmp_path)])
    keras.applications.MobileNetV2(input_shape=[128, 128, 3], include_top=False,
                                   weights=str(tmp_path / 'encoder_seed1.h5'))
