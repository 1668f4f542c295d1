"""A simulated Microsoft 365 tenant served over HTTPS on loopback; written from Microsoft's documents.

It never imports the service, and the service never imports it (an import contract enforces both).
"""
