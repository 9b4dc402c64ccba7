#!/usr/bin/env python3
# Generated from workloads.yaml by generate.py: do not edit.
"""gpu-1: Neural network training with dynamic batch sizes (CNN).

The earlier script's name, kept working: ``python gpu_process_1.py [options]`` equals
``python -m workloads run gpu-1 [options]``.
"""

import sys
from pathlib import Path

# Importable from a checkout as well as from an installed package.
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))

from workloads.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "gpu-1", *sys.argv[1:]]))
