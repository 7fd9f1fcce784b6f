"""The run console: component and progress lines on the terminal, everything else in the log file."""

import os
import subprocess
import sys
import textwrap

from modules import hparams


def test_console_shows_components_and_progress_and_logs_the_rest(tmp_path):
    log_path = tmp_path / 'logs' / 'run.log'
    script = textwrap.dedent(f'''
        import logging, os, sys
        from absl import logging as absl_logging
        from pipeline.local.console import RunConsole
        with RunConsole({str(log_path)!r}, lambda node: ('ran', 'train 12 examples')) as console:
            absl_logging.info('Component %s is running.', 'TfdsExampleGen')
            logging.getLogger('apache_beam').warning('a noisy third-party warning')
            print('a library printing to stdout')
            os.write(2, b'C++ code writing to stderr\\n')
            logging.getLogger({hparams.PROGRESS_LOGGER!r}).info('epoch %d/%d', 1, 3)
            absl_logging.info('Component %s is finished.', 'TfdsExampleGen')
            absl_logging.info('Component %s is running.', 'latest_blessed_model_resolver')
            absl_logging.info('Component %s is running.', 'Trainer')
            try:
                raise ValueError('Input shape (64, 64, 3) does not match\\nsecond line')
            except ValueError as e:
                console.failed(e)
        print('after the console')
    ''')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, check=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    terminal = done.stdout.splitlines()
    assert terminal[0] == 'TfdsExampleGen     started'
    assert terminal[1] == '    epoch 1/3'
    assert terminal[2].startswith('TfdsExampleGen     ran in 0 s: train 12 examples')
    assert terminal[3] == 'Trainer            started', 'resolvers get no line'
    assert terminal[4] == 'Trainer            FAILED: ValueError: Input shape (64, 64, 3) does not match'
    assert terminal[5] == f'Full log: {log_path}'
    assert terminal[6:] == ['after the console'], 'output is restored when the console closes'
    assert 'noisy' not in done.stdout + done.stderr and 'C++' not in done.stdout + done.stderr
    log = log_path.read_text()
    for line in ('a noisy third-party warning', 'a library printing to stdout', 'C++ code writing to stderr',
                 'Traceback', 'second line', '[console] Trainer            started'):
        assert line in log, line


def test_verbose_console_redirects_nothing(tmp_path):
    script = textwrap.dedent(f'''
        import logging
        from pipeline.local.console import RunConsole
        with RunConsole({str(tmp_path / 'run.log')!r}, verbose=True):
            logging.getLogger('apache_beam').warning('a noisy third-party warning')
    ''')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, check=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    assert 'a noisy third-party warning' in done.stderr


def test_readme_console_sample_is_what_the_console_prints(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    readme = open(os.path.join(root, 'README.md')).read()
    sample = readme.split("\n```\npetseg: pipeline 'petseg', log ", 1)[1].split('\n\n', 1)[0].splitlines()[1:]
    component_lines = [line for line in sample if not line.startswith('    ')]
    nodes = [line.split()[0] for line in component_lines if line.endswith(' started')]
    assert len(nodes) >= 10, f'the README sample shows {len(nodes)} components starting: {component_lines}'
    events = ''.join(f'absl_logging.info("Component %s is running.", {node!r})\n'
                     f'absl_logging.info("Component %s is finished.", {node!r})\n' for node in nodes)
    script = ('from absl import logging as absl_logging\n'
              'from pipeline.local.console import RunConsole\n'
              f'with RunConsole({str(tmp_path / "run.log")!r}, lambda node: ("ran", "")):\n'
              + textwrap.indent(events, '    '))
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, check=True, cwd=root)
    printed = done.stdout.splitlines()
    assert len(printed) == len(component_lines), (component_lines, printed)
    for shown, real in zip(component_lines, printed):  # the sample's figures differ, never its lines' form
        assert shown.split(' in ')[0] == real.split(' in ')[0], (shown, real)
