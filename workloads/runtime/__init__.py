"""The runtime every workload shares; it never knows a workload by name.

Workload modules use ``workloads.runtime.context.Context`` (handed to their ``run`` function) and
``workloads.runtime.tasks`` (Task, TaskResult, Interrupted). This package's ``__init__`` stays empty
so that importing a piece of it (sizes, limits) stays cheap.
"""
