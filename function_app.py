"""Every trigger of Seatkeeper, declared once. Bodies are a few lines: bind context, call a handler.

Nothing happens at import time: the Functions host indexes this module, so adapters are built lazily by
the composition root on first use.
"""

from __future__ import annotations

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
