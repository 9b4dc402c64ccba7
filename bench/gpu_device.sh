#!/usr/bin/env bash
# The six GPU workloads on a lent device machine, in one call (issue 25): the project installed
# from carried wheels with that machine's torch, the CUDA-marked tests, and bench/gpu.py (the six
# workloads beside the plain bf16 matmul reference), everything it produced under $OUT.
#
#   bench/gpu_device.sh --prepare [--python-versions "3.12 3.13"]
#       here, where pip reaches an index: the wheels of what the project and its CUDA tests
#       import and the device image may lack, into .device/wheels (git-ignored), for the
#       device's Python (3.12), 3.13 and this machine's Python (for the CPU dry run)
#   bench/gpu_device.sh [--device cuda|cpu] [--duration S] [--budget S] [--out DIR]
#       on the device machine (`run` tool: carry .device/wheels, timeout_s 480; see
#       CONTRIBUTING.md), or here with --device cpu and a short --duration
#
# Run mode, within --budget seconds (default 450, so a 480 s call never cuts it short):
#   1. the interpreter ($PYTHON, default python3), torch, CUDA and the GPU, printed;
#   2. the wheels the interpreter lacks or has too old (pip's own dry run against what is
#      installed decides), then the project without dependencies, both into a temporary path,
#      and every module of the installed copy imported from outside the checkout;
#   3. the CUDA-marked tests (pytest -m gpu), several at once (--test-workers, 9 on CUDA, at
#      most 150 s, and no more than leaves the bench 30 s a workload): sharing the GPU, they
#      check correctness, not speed;
#   4. bench/gpu.py: gpu-1 ... gpu-6, one at a time with the GPU to themselves, each for the
#      duration the time left allows (30 to 45 s on CUDA), and the reference matmul loop.
# Under --out (default $OUT, else .device/out), at most 8 files, as the `run` tool brings back:
#   bench.json              the bench table: versions (python, torch, CUDA, cuDNN, driver),
#                           figures and targets
#   documents/gpu-N.json    the six results documents of the bench runs
#   pytest.txt              the output of pytest -m gpu
# The console output is this script's log. The exit status is 0 when every phase succeeded.
set -uo pipefail

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2

mode=run
device=cuda
duration=
budget=450
out=${OUT:-.device/out}
wheels=.device/wheels
python=${PYTHON:-python3}
test_workers=
test_cap=150
python_versions="3.12 3.13"
workloads=(gpu-1 gpu-2 gpu-3 gpu-4 gpu-5 gpu-6)
# What the project imports at run time (pyproject's dependencies), and what the tests and the
# build of the project need: the device's python3 has some of them, the rest comes as wheels.
tools=("pytest>=8.0" "pytest-timeout>=2.2" "pytest-xdist>=3.5" "jsonschema>=4.18" "hatchling>=1.21")
# On the device image already (KINDS.md), and large: not downloaded.
device_has=(numpy pillow psutil pyyaml torch nvidia-ml-py)

while [ $# -gt 0 ]; do
  case $1 in
    --prepare) mode=prepare ;;
    --device) device=$2; shift ;;
    --duration) duration=$2; shift ;;
    --budget) budget=$2; shift ;;
    --out) out=$2; shift ;;
    --wheels) wheels=$2; shift ;;
    --python) python=$2; shift ;;
    --test-workers) test_workers=$2; shift ;;
    --python-versions) python_versions=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for number in "$budget" ${duration:+"$duration"} ${test_workers:+"$test_workers"}; do
  [[ $number =~ ^[0-9]+$ ]] || { echo "not a whole number of seconds or workers: $number" >&2; exit 2; }
done
case $device in cuda | cpu) ;; *) echo "--device is cuda or cpu" >&2; exit 2 ;; esac

say() { printf '[gpu_device %3ds] %s\n' "$SECONDS" "$*"; }
left() { echo $((budget - SECONDS)); }

# The project's run-time requirements, from pyproject.toml (one per line).
project_requirements() {
  "$1" - <<'PY'
import re, sys
try:
    import tomllib
except ImportError:  # Python 3.10: the list, read plainly
    text = open("pyproject.toml").read()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    print("\n".join(re.findall(r'"([^"]+)"', block)))
    sys.exit()
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))
PY
}

prepare() {
  local py=$python
  if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then py=.venv/bin/python; fi
  local here
  here=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || exit 1
  local versions
  # shellcheck disable=SC2086 # a list of versions, one word each
  versions=$(printf '%s\n' $python_versions "$here" | awk '!seen[$0]++' | tr '\n' ' ')
  local requirements=() name
  while read -r name; do
    local bare=${name%%[<>=!~;]*}
    [[ " ${device_has[*]} " == *" ${bare,,} "* ]] || requirements+=("$name")
  done < <(project_requirements "$py")
  requirements+=("${tools[@]}")
  # The images' lock pins what it holds; the rest is what the index has.
  local constraints
  constraints=$(mktemp)
  sed -n 's/^\([A-Za-z0-9_.-]*==[^ \\]*\( ; [^\\]*\)\{0,1\}\) *\\\{0,1\}$/\1/p' \
    images/requirements.lock >"$constraints"
  local platforms=(--platform manylinux1_x86_64 --platform manylinux2014_x86_64) n
  for n in $(seq 17 39); do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
  rm -rf "$wheels" && mkdir -p "$wheels"
  local version
  for version in $versions; do
    say "wheels for CPython $version: ${requirements[*]}"
    "$py" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
      --python-version "$version" --implementation cp "${platforms[@]}" \
      --constraint "$constraints" --dest "$wheels" "${requirements[@]}" || exit 1
  done
  rm -f "$constraints"
  printf '%s\n' "${requirements[@]}" >"$wheels/requirements.txt"
  say "$(find "$wheels" -name '*.whl' | wc -l) wheels, $(du -sh "$wheels" | cut -f1), in $wheels"
  say "on the device: bash bench/gpu_device.sh, carrying $wheels (CONTRIBUTING.md)"
}

# Phase 2: the missing dependencies into $site, then the project into $project.
install() {
  [ -d "$wheels" ] || { say "no wheel folder $wheels: run bench/gpu_device.sh --prepare here first"; return 1; }
  local listed=$tmp/requirements.txt report=$tmp/report.json
  { project_requirements "$python"; printf '%s\n' "${tools[@]}"; } >"$listed"
  local wanted
  if timeout 120 "$python" -m pip install --quiet --dry-run --no-index --find-links "$wheels" \
    --report "$report" --requirement "$listed" >"$tmp/dry-run.log" 2>&1; then
    wanted=$("$python" -c '
import json, sys
report = json.load(open(sys.argv[1]))
found = [item["metadata"] for item in report["install"]]
print(" ".join("%s==%s" % (meta["name"], meta["version"]) for meta in found))
' "$report") || return 1
  else
    say "pip's dry run failed (below); installing every carried distribution instead"
    tail -5 "$tmp/dry-run.log"
    wanted=$(find "$wheels" -name '*.whl' -printf '%f\n' | cut -d- -f1 | sort -u | tr '\n' ' ')
  fi
  if [ -n "$wanted" ]; then
    say "installing from $wheels: $wanted"
    # shellcheck disable=SC2086 # one word per distribution
    timeout 120 "$python" -m pip install --quiet --no-index --no-deps --find-links "$wheels" \
      --target "$site" $wanted || return 1
  else
    say "the interpreter has every dependency"
  fi
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
  say "the project, without dependencies, into $project"
  timeout 120 "$python" -m pip install --quiet --no-index --no-deps --no-build-isolation \
    --target "$project" . || return 1
  # Every module of the installed copy, from outside the checkout, with this machine's torch;
  # replay's engines and the pictures need the docker SDK and matplotlib (the replay and report
  # extras), which a GPU run does not.
  (cd "$tmp" && PYTHONPATH=$project:$PYTHONPATH "$python" - "$ROOT" <<'PY'
import importlib, pkgutil, sys
import torch
import workloads
assert not workloads.__file__.startswith(sys.argv[1] + "/"), f"not installed: {workloads.__file__}"
failed = []
for module in pkgutil.walk_packages(workloads.__path__, "workloads."):
    if module.name.endswith("__main__") or ".launchers." in module.name:
        continue  # scripts: importing them installs signal handlers
    try:
        importlib.import_module(module.name)
    except ModuleNotFoundError as error:
        if error.name not in ("docker", "matplotlib"):
            failed.append(f"{module.name}: {error}")
    except Exception as error:  # noqa: BLE001
        failed.append(f"{module.name}: {type(error).__name__}: {error}")
from workloads.manifest import get_manifest
gpu = [w.id for w in get_manifest() if w.category == "gpu"]
print(f"imported workloads {workloads.__version__} from {workloads.__path__[0]} with torch "
      f"{torch.__version__} (CUDA {torch.version.cuda}); GPU workloads: {' '.join(gpu)}")
for line in failed:
    print("import failed:", line)
sys.exit(1 if failed else 0)
PY
  )
}

# What the bench needs for $1 seconds per workload: each run's start and end beyond its
# duration, and the bench's own start and reference loops.
overhead=6 fixed=30
bench_needs() { echo $((${#workloads[@]} * ($1 + overhead) + fixed)); }

# Phase 3: the CUDA-marked tests, in the files that hold any, leaving the bench its minimum.
run_tests() {
  local files
  mapfile -t files < <(grep -l 'pytest.mark.gpu' tests/test_*.py)
  local workers=${test_workers:-$([ "$device" = cuda ] && echo 9 || echo 0)}
  local parallel=(-p no:xdist)
  [ "$workers" -gt 0 ] && parallel=(-n "$workers")
  local limit=$(($(left) - $(bench_needs "${duration:-30}")))
  [ "$limit" -gt "$test_cap" ] && limit=$test_cap
  [ "$limit" -lt 10 ] && { say "no time left for the tests"; return 1; }
  say "pytest -m gpu ${files[*]} (${parallel[*]}), within $limit s"
  timeout -k 10 "$limit" "$python" -m pytest -m gpu -o addopts= -p no:cacheprovider -rA \
    "${parallel[@]}" "${files[@]}" >"$out/pytest.txt" 2>&1
  local code=$?
  tail -n 15 "$out/pytest.txt"
  say "pytest exited $code$([ "$code" -eq 124 ] && echo ', stopped at its time limit')"
  [ "$code" -eq 0 ]
}

# Phase 4: bench/gpu.py, each workload's duration sized from the time left.
run_bench() {
  local fit=$((($(left) - fixed) / ${#workloads[@]} - overhead))
  local seconds=$duration
  if [ -z "$seconds" ]; then
    seconds=$((fit > 45 ? 45 : fit))
    [ "$seconds" -lt 30 ] && say "only $seconds s per workload fit the budget (30 wanted)"
  elif [ "$seconds" -gt "$fit" ]; then
    say "--duration $seconds does not fit the budget: $fit s per workload"
    seconds=$fit
  fi
  [ "$seconds" -lt 1 ] && { say "no time left for the bench"; return 1; }
  local reference=1
  [ "$device" = cuda ] && reference=5
  local limit=$(($(left) - 5))
  say "bench/gpu.py: ${workloads[*]} at $seconds s each, reference ${reference} s, within $limit s"
  timeout -k 10 "$limit" "$python" bench/gpu.py --device "$device" --duration "$seconds" \
    --reference-seconds "$reference" --json "$out/bench.json" --documents "$out/documents" \
    "${workloads[@]}"
  local code=$?
  say "bench exited $code; $(find "$out/documents" -name '*.json' 2>/dev/null | wc -l) documents"
  [ "$code" -eq 0 ]
}

if [ "$mode" = prepare ]; then
  prepare
  exit 0
fi

# The device has no index: pip reads nothing but the carried wheels.
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT PIP_REQUIREMENT
export PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_ROOT_USER_ACTION=ignore PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cloudai-gpu-device.XXXXXX")
site=$tmp/site project=$tmp/project
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
rm -rf "$out/bench.json" "$out/pytest.txt" "$out/documents"

say "budget $budget s, device $device, out $out, revision $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
"$python" - "$device" <<'PY' || { say "no usable $python with torch"; exit 1; }
import platform, sys
import torch
print(f"python {platform.python_version()} ({sys.executable}); torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print(f"device: {torch.cuda.get_device_name()}")
elif sys.argv[1] == "cuda":
    print("WARNING: torch sees no CUDA device: the bench falls back to the CPU, the tests skip")
PY
command -v nvidia-smi >/dev/null &&
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader

failed=()
install || failed+=(install)
say "installed"
run_tests || failed+=(tests)
run_bench || failed+=(bench)
say "under $out: $(cd "$out" && find . -type f | sort | tr '\n' ' ')"
if [ ${#failed[@]} -gt 0 ]; then
  say "done in $SECONDS s; failed: ${failed[*]}"
  exit 1
fi
say "done in $SECONDS s"
