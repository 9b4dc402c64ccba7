"""``python -m workloads replay``: play a trace against a real engine and record what it did.

``runner`` paces the submissions and keeps the records, ``engine`` defines what an engine
offers (``docker_engine``, ``swarm_engine``), and ``records`` is the run folder that
``analyze`` reads.
"""
