"""The GCE fake served on a given address instead of 127.0.0.1 (an extension of
tests/fakes/gce kept apart from it): on the bridge of a host network, both this process and
a monitor on a namespace host (another process, in another network namespace, with a
loopback of its own) reach it."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import make_server

from tests.fakes.gce import GceFake
from tests.fakes.gce.server import _QuietHandler


class BridgedGceFake(GceFake):
    def __init__(self, address: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._address = address
        self._server.server_close()  # the loopback one, never started
        self._server = make_server(
            address, 0, self._app, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{self._address}:{self._server.port}"
