"""Ray Serve on the cluster: two composed deployments (an ingress that calls a model
deployment through its handle), called over HTTP. Exits non-zero if the answer is wrong,
and shuts the application down at the end.

Usage: rayctl submit CONFIG examples/serve_app.py [PORT]
  PORT is Serve's HTTP port on the head (default 8000); Serve listens on the head's address.
"""

import json
import sys
import urllib.request

import ray
from ray import serve
from starlette.requests import Request


@serve.deployment
class Doubler:
    def double(self, x: int) -> int:
        return 2 * x


@serve.deployment
class Ingress:
    def __init__(self, doubler) -> None:
        self.doubler = doubler

    async def __call__(self, request: Request) -> dict:
        x = int(request.query_params["x"])
        return {"x": x, "doubled": await self.doubler.double.remote(x)}


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    ray.init()
    host = ray.util.get_node_ip_address()
    # One proxy, on the head: on a cluster of processes sharing one machine, proxies on
    # other nodes would bind the same address.
    serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": port})
    serve.run(Ingress.bind(Doubler.bind()), name="doubler", route_prefix="/double")
    try:
        url = f"http://{host}:{port}/double?x=21"
        with urllib.request.urlopen(url, timeout=60) as response:
            answer = json.loads(response.read())
        print(f"GET {url} -> {answer}")
        if answer != {"x": 21, "doubled": 42}:
            sys.exit("unexpected answer")
        print("ray serve: ok")
    finally:
        serve.shutdown()


if __name__ == "__main__":
    main()
