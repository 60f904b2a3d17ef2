"""Both ends of a request held in memory, and the client watched meanwhile.

The request body is read whole before a database connection is taken, so a
slow upload never holds one. The app's response is held until the
transaction has ended, so a client never sees success for work that did not
commit. While the app runs, a disconnect cancels it: nobody is left to
answer, and its work is rolled back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ClientDisconnected(Exception):
    """The client went away before the response; the work was rolled back."""


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, content_length: str | None, limit: int) -> bytes:
    """The whole request body, or BodyTooLarge as soon as it exceeds `limit`."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


@dataclass
class BufferedResponse:
    """What the app sent, to be replayed once the transaction has ended; or
    the exception it raised instead of finishing."""

    status: int = 0
    messages: list[Message] = field(default_factory=list)
    failure: Exception | None = None

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        self.messages.append(message)

    async def replay(self, send: Send) -> None:
        for message in self.messages:
            await send(message)


def replay_receive(body: bytes, disconnected: asyncio.Event) -> Receive:
    """An ASGI receive for a body already read: the whole body at once, then
    the client's disconnect when `disconnected` is set."""
    body_sent = False

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    return receive


async def run_buffered(app: ASGIApp, scope: Scope, body: bytes, receive: Receive) -> BufferedResponse:
    """Run `app` in this task on the already-read `body`, holding its
    response. Raises ClientDisconnected if the client left meanwhile (the app
    was cancelled, or ended anyway); lets any other cancellation (shutdown)
    through.

    One task per request (issue 8): the app runs here, not in a second task
    raced with asyncio.wait; a watcher cancels this task when the client leaves.
    """
    response = BufferedResponse()
    current = asyncio.current_task()
    assert current is not None
    disconnected = asyncio.Event()

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected.set()
        current.cancel()

    watcher = asyncio.ensure_future(watch_disconnect())
    absorbed = False
    try:
        await app(scope, replay_receive(body, disconnected), response.send)
    except asyncio.CancelledError:
        # The watcher's cancellation is ours to absorb; any other
        # (shutdown) stops the app and drops the work.
        if not disconnected.is_set() or current.uncancel() > 0:
            watcher.cancel()
            raise
        absorbed = True
    except Exception as exc:
        response.failure = exc
    if disconnected.is_set():
        # Also when the app swallowed the cancellation and returned: the
        # client is gone, nothing is kept.
        if not absorbed and current.cancelling() > 0:
            current.uncancel()
        raise ClientDisconnected
    watcher.cancel()
    return response
