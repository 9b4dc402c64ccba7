#!/bin/sh
# Installs the images' Python dependencies into /opt/venv, read from pyproject.toml:
#   pip-install.sh          the core dependencies (io and cpu images)
#   pip-install.sh gpu      the gpu extra: torch first, from $TORCH_INDEX_URL if set and from the
#                           wheelhouse mounted at /wheels (air-gapped clusters, CPU-only tests)
# Optional BuildKit secrets: pip_cert (a CA bundle, for proxies) and pip_conf (a pip.conf).
# pip itself is a build tool: it is bootstrapped when missing and removed at the end, in the same
# layer, so no image carries it.
set -eu
extra=${1:-}
if [ -f /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi
if [ -f /run/secrets/pip_conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip_conf; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore

requirements() {
  python - "$1" <<'PY'
import sys, tomllib
project = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]
wanted = project["dependencies"] if sys.argv[1] == "core" else project["optional-dependencies"][sys.argv[1]]
print("\n".join(requirement for requirement in wanted if not requirement.startswith("torch")))
PY
}

python -m pip --version >/dev/null 2>&1 || python -m ensurepip --default-pip >/dev/null

if [ "$extra" = gpu ]; then
  # shellcheck disable=SC2086
  pip install --find-links /wheels ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "${TORCH_SPEC:-torch}"
  requirements gpu > /tmp/requirements.txt
else
  requirements core > /tmp/requirements.txt
fi
pip install --requirement /tmp/requirements.txt
rm /tmp/requirements.txt
python -m pip uninstall --yes --quiet pip setuptools

# What no workload uses at run time: test suites, test binaries and C/C++ headers (about 20 MB
# in the io/cpu images, 150 MB in the GPU ones).
site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
find "$site" -depth -type d \( -name tests -o -name test \) -prune -exec rm -rf {} +
rm -rf "$site/numpy/_core/include" "$site/torch/include"
