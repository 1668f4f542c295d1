"""Load test of the Graph webhook through the local host (`python -m bench.webhook`)."""
