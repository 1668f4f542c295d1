"""The soak (`python -m bench.soak`): 30 days of sandbox business time with a trickle and a Graph outage."""
