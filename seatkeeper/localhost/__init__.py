"""The local host: runs function_app.py without Core Tools (HTTP, timers, queue triggers, admin API).

`python -m seatkeeper serve` starts it; in sandbox mode it also starts the simulated tenant as a separate
process. Nothing here is deployed to Azure, where the Functions host does this work.
"""
