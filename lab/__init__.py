"""The real fault lab: a FastAPI backend, PostgreSQL and nginx in a network namespace, behind a loopback edge.

``lab.manager.Lab`` brings it up and down and injects the faults catalogued in ``lab.faults``.
"""
