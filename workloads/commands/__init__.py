"""The commands of ``python -m workloads``, one module each: ``HELP`` (one line),
``add_arguments(parser)`` and ``main(args) -> exit status``. A command module imports only what
its arguments need; what its work needs, it imports in ``main``, so that ``list`` stays light.
"""

# In the order --help lists them.
COMMANDS = ("list", "describe", "run", "report", "tasks", "trace", "replay", "analyze")
