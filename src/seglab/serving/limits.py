"""What bounds one client's share of the server, as ASGI middleware around the application: a
deadline for each request's body (408 when it has not arrived in time, so a stalled upload gives
its connection back), a number of requests each client (IP address) may have in progress at once
(429 beyond it), and a client that goes away logged in one line rather than as a traceback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter

from starlette.requests import ClientDisconnect

# uvicorn's own logger for what is not an access: configured (and shown) wherever uvicorn runs.
LOG = logging.getLogger("uvicorn.error")


class BodyTimeout(Exception):
    """The request's body did not arrive before its deadline."""


class ClientLimitsMiddleware:
    """At most ``per_client`` requests in progress per client address (429, with Retry-After,
    beyond them), each request's body received within ``body_timeout`` seconds of its headers
    (else 408), and ClientDisconnect (the client went away while its body was arriving) logged
    in one line."""

    def __init__(self, app, *, per_client: int = 8, body_timeout: float = 60.0):
        if per_client < 1 or not body_timeout > 0:
            raise ValueError("per_client must be at least 1 and body_timeout positive")
        self.app, self.per_client, self.body_timeout = app, per_client, body_timeout
        self.in_progress: Counter[str] = Counter()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown",))[0]
        if self.in_progress[client] >= self.per_client:
            detail = (
                f"too many requests from this client at once: at most {self.per_client} may be "
                "in progress; retry once one has finished"
            )
            return await answer(send, 429, detail, {"retry-after": "1"})
        self.in_progress[client] += 1
        request = f"{scope['method']} {scope['path']}"
        started = released = False

        def release():
            nonlocal released
            if not released:
                released = True
                self.in_progress[client] -= 1
                if not self.in_progress[client]:
                    del self.in_progress[client]

        async def send_noting(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            if message["type"] == "http.response.body" and not message.get("more_body"):
                # the slot is free once the answer is complete: a keep-alive client may send its
                # next request before this coroutine has returned
                release()
            await send(message)

        try:
            await self.app(scope, self._receive_in_time(receive), send_noting)
        except BodyTimeout:
            LOG.warning(
                "client %s: the body of %s did not arrive within %g s; answered 408",
                client,
                request,
                self.body_timeout,
            )
            if not started:
                detail = f"the request's body did not arrive within {self.body_timeout:g} s"
                await answer(send, 408, detail, {"connection": "close"})
        except ClientDisconnect:
            LOG.info("client %s went away while sending %s", client, request)
        finally:
            release()

    def _receive_in_time(self, receive):
        """``receive``, raising BodyTimeout once the body has taken longer than the timeout;
        after the body's last part, as it is (a wait for the client's disconnect is no body)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        body_done = False

        async def receive_in_time():
            nonlocal body_done
            if body_done:
                return await receive()
            try:  # (asyncio.timeout_at once Python 3.10 is left behind)
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise BodyTimeout from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        return receive_in_time


async def answer(send, status: int, detail: str, headers: dict[str, str]) -> None:
    """A JSON error response ``{"detail": ...}``, as the application's own errors are."""
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
