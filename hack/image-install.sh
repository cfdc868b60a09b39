#!/bin/sh
# Installs nfs-provisioner from a source tree into a new virtualenv, with its runtime
# dependencies only. The Dockerfile's builder stage runs this script, and
# tests/chart/test_image.py runs the very same script in a fresh virtualenv, so what the
# test verifies is what the image gets.
#
# usage: image-install.sh SOURCE_DIR VENV_DIR   (PYTHON selects the interpreter, default python3)
set -eu

source_dir=${1:?usage: image-install.sh SOURCE_DIR VENV_DIR}
venv=${2:?usage: image-install.sh SOURCE_DIR VENV_DIR}
python=${PYTHON:-python3}

"$python" -m venv "$venv"
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
# A wheel first (built in pip's isolated build environment), then a plain install of it:
# nothing of the source tree but the package itself ends up in the virtualenv.
"$venv/bin/python" -m pip wheel --no-deps --wheel-dir "$wheels" "$source_dir"
"$venv/bin/python" -m pip install "$wheels"/nfs_provisioner-*.whl
# The running provisioner needs neither pip nor setuptools; fewer packages, fewer CVEs.
"$venv/bin/python" -m pip uninstall --yes pip setuptools
"$venv/bin/nfs-provisioner" --version
