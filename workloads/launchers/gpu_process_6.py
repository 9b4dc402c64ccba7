#!/usr/bin/env python3
# Generated from workloads.yaml by generate.py: do not edit.
"""gpu-6: Generative models: variational autoencoder.

The earlier script's name, kept working: ``python gpu_process_6.py [options]`` equals
``python -m workloads run gpu-6 [options]``.
"""

import sys
from pathlib import Path

# Importable from a checkout as well as from an installed package.
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))

from workloads.runtime.signals import capture_early

capture_early()  # before the heavy imports: a stop during start-up still gets its document

from workloads.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["run", "gpu-6", *sys.argv[1:]]))
