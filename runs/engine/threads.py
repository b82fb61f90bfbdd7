"""Calls made off the runner's thread so the runner can stop waiting for them: sync callables in
a daemon thread each, coroutines on one shared event loop thread. Plain Python.

A sync call cannot be interrupted; when the runner gives up on it, the thread is left to finish
on its own (daemon: it never keeps the process alive) and its result is dropped. A coroutine is
cancelled. One loop serves every run in the process, so an async tool that blocks its loop (a
`time.sleep` inside `async def`) delays other async tools; such a tool should be sync.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future


class Call:
    """A call in flight. After `wait` returns True, exactly one of `value`/`exc` is meaningful."""

    def __init__(self):
        self.value = None
        self.exc: BaseException | None = None
        self._done = threading.Event()
        self._future: Future | None = None

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True once the call has finished."""
        return self._done.wait(timeout)

    def cancel(self) -> None:
        """Stop a coroutine; a sync call is abandoned (it keeps running, its result unused)."""
        if self._future is not None:
            self._future.cancel()

    def _finish(self, value=None, exc: BaseException | None = None) -> None:
        self.value, self.exc = value, exc
        self._done.set()


def call_in_thread(fn: Callable, kwargs: dict, *, thread_name: str = "agentops-call") -> Call:
    """Start `fn(**kwargs)` in a new daemon thread."""
    call = Call()

    def target():
        try:
            value = fn(**kwargs)
        except BaseException as exc:  # the thread must report whatever ends it
            call._finish(exc=exc)
        else:
            call._finish(value)

    threading.Thread(target=target, name=thread_name[:60], daemon=True).start()
    return call


def call_async(fn: Callable, kwargs: dict) -> Call:
    """Start coroutine function `fn(**kwargs)` on the shared loop."""
    call = Call()
    try:
        coroutine = fn(**kwargs)
    except Exception as exc:  # bad arguments fail while creating the coroutine
        call._finish(exc=exc)
        return call
    future = asyncio.run_coroutine_threadsafe(coroutine, _loop())
    call._future = future

    def done(f: Future) -> None:
        if f.cancelled():
            call._finish(exc=TimeoutError("cancelled"))
        elif f.exception() is not None:
            call._finish(exc=f.exception())
        else:
            call._finish(f.result())

    future.add_done_callback(done)
    return call


_loop_lock = threading.Lock()
_shared_loop: asyncio.AbstractEventLoop | None = None


def _loop() -> asyncio.AbstractEventLoop:
    global _shared_loop
    with _loop_lock:
        if _shared_loop is None or _shared_loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="agentops-async-tools", daemon=True
            ).start()
            _shared_loop = loop
        return _shared_loop
