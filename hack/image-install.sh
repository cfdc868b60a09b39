#!/bin/sh
# Installs nfs-provisioner from a source tree into a new virtualenv, with its runtime
# dependencies only, and leaves out what the running provisioner never imports. The
# Dockerfile's builder stage runs this script, and tests/chart/test_image.py runs the very same
# script in a fresh virtualenv, so what the test verifies is what the image gets.
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
# nothing of the source tree but the package itself ends up in the virtualenv. No byte-code
# yet: only what the provisioner imports gets compiled, below.
"$venv/bin/python" -m pip wheel --no-deps --wheel-dir "$wheels" "$source_dir"
"$venv/bin/python" -m pip install --no-compile "$wheels"/nfs_provisioner-*.whl
# The running provisioner needs neither pip nor setuptools; fewer packages, fewer CVEs.
"$venv/bin/python" -m pip uninstall --yes pip setuptools

# What the provisioner never imports:
# - the kubernetes package's asyncio client (kubernetes/aio, a second copy of every API and
#   model, about 70 MB) and the distributions only it requires (aiohttp and its own
#   dependencies): the provisioner talks to the API server through the synchronous config
#   loaders and urllib3;
# - tests shipped inside packages.
# Files go as their distribution's RECORD lists them, as `pip uninstall` would remove them.
"$venv/bin/python" - <<'EOF'
import importlib.metadata as metadata
import re
import shutil
import sys
from pathlib import Path

# Requirements of the kubernetes distribution that serve kubernetes.aio only.
ASYNCIO_ONLY = {"aiohttp", "aiohttp-retry"}


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(dist):
    for requirement in dist.requires or []:
        if "extra ==" not in requirement:
            yield canonical(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])


installed = {canonical(d.metadata["Name"]): d for d in metadata.distributions()}
needed, todo = set(), ["nfs-provisioner"]
while todo:
    name = todo.pop()
    if name in needed or name not in installed:
        continue
    needed.add(name)
    for requirement in requirement_names(installed[name]):
        if not (name == "kubernetes" and requirement in ASYNCIO_ONLY):
            todo.append(requirement)

site = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
site = site / "site-packages"
for name in sorted(set(installed) - needed):
    dist = installed[name]
    for file in dist.files or []:
        path = Path(dist.locate_file(file))
        path.unlink(missing_ok=True)
    print(f"removed {name} {dist.version}: only kubernetes.aio requires it")
shutil.rmtree(site / "kubernetes" / "aio", ignore_errors=True)
for path in list(site.rglob("*")):
    if (path.is_dir() and path.name in ("tests", "test")) or path.name.endswith("_test.py"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
# Byte-code written before now (for modules removed above, too): compiled afresh below.
for path in list(site.rglob("__pycache__")):
    shutil.rmtree(path)
# Directories the removals emptied (deepest first).
for path in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
EOF

# Byte-code for exactly the modules the provisioner imports when it starts (and for the
# package itself): compiled once here, so a read-only root filesystem costs no start-up time.
PYTHONDONTWRITEBYTECODE= "$venv/bin/python" -c 'import nfs_provisioner.cli, nfs_provisioner.daemon'
"$venv/bin/python" -m compileall -q "$("$venv/bin/python" -c 'import nfs_provisioner, os; print(os.path.dirname(nfs_provisioner.__file__))')"
"$venv/bin/nfs-provisioner" --version
