"""The local end of `rayctl dashboard`: an HTTP proxy on 127.0.0.1 that adds the cluster's Ray
token to every request, so a browser or curl reaches a dashboard that runs with Ray's token
authentication without ever being given the token.

Ray 2.60's dashboard (ray/_private/authentication/http_token_authentication.py) takes the token
from an `Authorization: Bearer` header, an `X-Ray-Authorization` header, or its
`ray-authentication-token` cookie, which its login page sets after the user pastes the token;
no URL carries it. The proxy sends the header itself. Because anyone on this machine can
connect to 127.0.0.1, the proxy admits only requests that carry this run's session key: in the
URL it prints (`?rayctl_key=KEY`, removed before the request goes on), or in the cookie it sets
on that first answer (HttpOnly, SameSite=Strict), as Jupyter does with its token URL. The key
is random per run and worthless once the command ends; the token never leaves the process.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from pathlib import Path

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web
from multidict import CIMultiDict
from yarl import URL

from rayctl.errors import RayctlError

KEY_PARAM = "rayctl_key"
# Sent by the client but not meant for the next hop (RFC 9110 7.6.1), or set by aiohttp anew.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
    )
)


class DashboardProxy:
    """Serves 127.0.0.1:`local_port` (0: any free port) in a thread of its own, forwarding to
    `upstream` (`http://HOST:PORT`, e.g. the local end of an SSH tunnel) with `token_file`'s
    token (None: the cluster runs without token authentication)."""

    def __init__(self, upstream: str, token_file: Path | None, *, local_port: int = 0) -> None:
        self.upstream = upstream
        self.key = secrets.token_urlsafe(24)
        self._token = token_file.read_text().strip() if token_file else None
        self._local_port = local_port
        self.port = 0
        self._cookie = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    @property
    def url(self) -> str:
        """What a browser opens: the dashboard's start page with this run's key."""
        return f"http://127.0.0.1:{self.port}/?{KEY_PARAM}={self.key}"

    def __enter__(self) -> DashboardProxy:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        except OSError as exc:
            self.close()
            raise RayctlError(
                f"cannot listen on 127.0.0.1:{self._local_port}: {exc.strerror}; choose "
                "another local port, or 0 for any free one"
            ) from None
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving; returns once the port is closed."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        # No pooled connections: each request is its own tunnelled connection, closed after.
        self._session = ClientSession(
            connector=TCPConnector(force_close=True),
            auto_decompress=False,  # bytes pass through as the dashboard sent them
            timeout=ClientTimeout(total=None, sock_connect=30),
        )
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._local_port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._cookie = f"rayctl-dashboard-{self.port}"  # cookies ignore ports: one per run

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        given = request.query.get(KEY_PARAM) or request.cookies.get(self._cookie, "")
        if not secrets.compare_digest(given.encode(), self.key.encode()):
            return web.Response(
                status=401,
                text="rayctl dashboard: open the URL `rayctl dashboard` printed (it carries "
                "this run's key)\n",
            )
        target = URL(self.upstream).join(request.rel_url.without_query_params(KEY_PARAM))
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP
        )
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        assert self._session is not None
        try:
            answer = await self._session.request(
                request.method,
                target,
                headers=headers,
                data=request.content if request.can_read_body else None,
                allow_redirects=False,
            )
        except ClientError as exc:
            return web.Response(
                status=502, text=f"rayctl dashboard: the head's dashboard did not answer: {exc}\n"
            )
        async with answer:
            response = web.StreamResponse(
                status=answer.status,
                reason=answer.reason,
                headers=CIMultiDict(
                    (k, v) for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP
                ),
            )
            if KEY_PARAM in request.query:
                response.set_cookie(self._cookie, self.key, httponly=True, samesite="Strict")
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
