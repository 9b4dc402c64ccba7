"""The runtime every workload shares; it never knows a workload by name.

Workload modules use ``workloads.runtime.context.Context`` (handed to their ``run`` function),
``workloads.runtime.iterations`` (Iteration, IterationResult, Interrupted) and
``workloads.runtime.rates``. This package's ``__init__`` stays empty so that importing a piece
of it (limits, rates) stays cheap.
"""
