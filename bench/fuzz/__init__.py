"""Fuzzing of every HTTP endpoint at full scale (10,000 cases each): `python -m bench.fuzz`."""
