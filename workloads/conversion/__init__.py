"""A public cluster log into a replayable trace: a window of its records (window.py), their
time scale and offered load (window.py), their requests on the target's nodes (sizing.py), the
workload that replays each (mapping.py), assembled into a ``TraceFile`` (convert.py)."""
