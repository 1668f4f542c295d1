"""Calls a user function the way the Python worker does, and counts invocations in flight.

Async functions run on the host's event loop; plain functions run in a worker thread. A parameter named
`context` receives an `azure.functions.Context` with a fresh invocation id.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func
import structlog
from azure.functions import _abc as functions_abc  # the trace and retry context ABCs live only here

from seatkeeper.localhost.catalog import IndexedFunction

log = structlog.get_logger(__name__)


class _TraceContext(functions_abc.TraceContext):
    """An empty W3C trace context: the local host does no distributed tracing."""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _NoException(functions_abc.RpcException):
    """The retry context's "last exception" when there was none."""

    @property
    def source(self) -> str:
        return ""

    @property
    def stack_trace(self) -> str:
        return ""

    @property
    def message(self) -> str:
        return ""


class _RetryContext(functions_abc.RetryContext):
    """No retry policy locally: redelivery comes from the queue, as with Service Bus."""

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> functions_abc.RpcException:
        return _NoException()


class LocalContext(func.Context):
    """The `context` argument: invocation id and function name, as in Azure."""

    def __init__(self, invocation_id: str, function_name: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return ""

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return threading.local

    @property
    def trace_context(self) -> functions_abc.TraceContext:
        return _TraceContext()

    @property
    def retry_context(self) -> functions_abc.RetryContext:
        return _RetryContext()


class Invoker:
    """Runs user functions and knows how many are running (part of the host's idle answer)."""

    def __init__(self, max_threads: int = 16) -> None:
        self._in_flight = 0
        # Our own pool, not the loop's default one, so shutdown need not wait for a stuck function.
        self._threads = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="function")

    @property
    def in_flight(self) -> int:
        """Invocations started and not finished yet."""
        return self._in_flight

    async def invoke(self, function: IndexedFunction, trigger_value: Any) -> Any:
        """Call `function` with its trigger argument (and `context` if it asks); exceptions propagate."""
        invocation_id = str(uuid.uuid4())
        kwargs: dict[str, Any] = {function.arg_name: trigger_value}
        if "context" in _parameters(function.user_function):
            kwargs["context"] = LocalContext(invocation_id, function.name)
        self._in_flight += 1
        log.debug("localhost.invocation_started", function=function.name, invocation_id=invocation_id)
        try:
            user = function.user_function
            if inspect.iscoroutinefunction(user):
                return await user(**kwargs)
            call = contextvars.copy_context().run
            result = await asyncio.get_running_loop().run_in_executor(
                self._threads, functools.partial(call, user, **kwargs)
            )
            if inspect.isawaitable(result):
                return await result
            return result
        finally:
            self._in_flight -= 1

    def shutdown(self) -> None:
        """Stop taking work; functions still running in threads are left to finish (or die with us)."""
        self._threads.shutdown(wait=False, cancel_futures=True)


@functools.cache
def _parameters(user: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(user).parameters)
