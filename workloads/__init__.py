"""cloudai-workloads: synthetic IO, CPU and GPU workloads with one runtime contract.

Importing the package is cheap and never imports torch; see ``python -m workloads --help``.
"""

__version__ = "0.1.0"
