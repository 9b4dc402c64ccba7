#!/bin/sh
# Installs the images' Python dependencies into /opt/venv from the locks (scripts/lock makes
# them from pyproject.toml), every file checked against its hash:
#   pip-install.sh          images/requirements.lock (io and cpu images)
#   pip-install.sh gpu      torch first, from $TORCH_INDEX_URL if set and from the wheelhouse
#                           mounted at /wheels (air-gapped clusters, CPU-only tests); then
#                           images/requirements-gpu.lock
# The sha256 of the locks installed goes to /opt/venv/cloudai-lock.sha256: every results
# document records it (environment.lock), so two documents can be compared knowingly.
# Optional BuildKit secrets: pip_cert (a CA bundle, for proxies) and pip_conf (a pip.conf).
# pip itself is a build tool: it is bootstrapped when missing and removed at the end, in the same
# layer, so no image carries it.
set -eu
extra=${1:-}
locks=/tmp/locks
# An empty secret is none (compose passes /dev/null when the variable is unset).
if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi
if [ -s /run/secrets/pip_conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip_conf; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore

python -m pip --version >/dev/null 2>&1 || python -m ensurepip --default-pip >/dev/null

if [ "$extra" = gpu ]; then
  # shellcheck disable=SC2086
  pip install --find-links /wheels ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "${TORCH_SPEC:-torch}"
  pip install --require-hashes --no-deps --requirement "$locks/requirements-gpu.lock"
  installed="$locks/requirements.lock $locks/requirements-gpu.lock"
else
  pip install --require-hashes --no-deps --requirement "$locks/requirements.lock"
  installed="$locks/requirements.lock"
fi
# shellcheck disable=SC2086
echo "sha256:$(cat $installed | sha256sum | cut -d' ' -f1)" > /opt/venv/cloudai-lock.sha256
python -m pip uninstall --yes --quiet pip setuptools

# What no workload uses at run time: test suites, test binaries and C/C++ headers (about 20 MB
# in the io/cpu images, 150 MB in the GPU ones).
site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
find "$site" -depth -type d \( -name tests -o -name test \) -prune -exec rm -rf {} +
rm -rf "$site/numpy/_core/include" "$site/torch/include"
