#!/usr/bin/env python3
# Generated from workloads.yaml by generate.py: do not edit.
"""cpu-1: Matrix operations and linear algebra.

The earlier script's name, kept working: ``python cpu_process_1.py [options]`` equals
``python -m workloads run cpu-1 [options]``.
"""

import sys
from pathlib import Path

# Importable from a checkout as well as from an installed package.
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))

from workloads.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "cpu-1", *sys.argv[1:]]))
