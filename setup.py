"""Installs petseg's packages (pipeline, components, modules, serving) so TFX finds user code by dotted path."""

from setuptools import find_packages, setup

setup(
    name='petseg',
    version='0.1.0',
    description='Production TFX pipeline for pet image segmentation (MobileNetV2 U-Net)',
    python_requires='>=3.10,<3.11',
    packages=find_packages(include=['pipeline', 'pipeline.*', 'components', 'components.*', 'modules', 'modules.*',
                                    'serving', 'serving.*']),
    package_data={'pipeline': ['schemas/*.pbtxt'], 'serving': ['static/*.html'],
                  'components': ['versioned_pusher/templates/*.j2']},
    install_requires=[],  # pinned in requirements.txt / constraints.txt; see the Makefile
)
