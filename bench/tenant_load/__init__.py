"""Sandbox tenant load time: a generated 100,000-user tenant at start-up and through the control plane."""
