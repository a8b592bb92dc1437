"""The packages of the wheel, for setuptools (everything else is in pyproject.toml).

The found packages (harness*, hydra_plugins*) plus two data-only packages mapped from the top-level
folders: conf/ -> harness/conf/ and experiments/ -> harness/experiments/ inside the wheel (their yaml
files are package-data in pyproject.toml). pyproject's `packages.find` cannot add mapped packages to
what it finds, and a hand-kept list would miss the next new subpackage; this computes it.
"""

from setuptools import find_namespace_packages, setup

MAPPED = {"harness.conf": "conf", "harness.experiments": "experiments"}

setup(packages=find_namespace_packages(include=["harness*", "hydra_plugins*"], exclude=list(MAPPED)) + list(MAPPED),
      package_dir=MAPPED)
