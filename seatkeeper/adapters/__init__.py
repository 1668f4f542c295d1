"""Adapters: the I/O behind the core's ports (Graph, queues, state, alert channels, local defaults)."""
