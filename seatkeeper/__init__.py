"""Seatkeeper: keeps Microsoft 365 Copilot licenses where they belong (gate, verify, reprocess, alert)."""
