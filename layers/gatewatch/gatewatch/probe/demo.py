"""A tiny loopback site for ``gatewatch probe --demo``: one healthy route and one that fails like a real 502."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gatewatch.config.models import Target

ROUTES = {
    "/health": (200, {"status": "ok", "database": "ok"}, {}),
    "/api/v1/orders": (200, {"orders": [], "status": "ok"}, {}),
    # What an nginx 502 looks like once relayed by Cloudflare.
    "/api/v1/checkout": (502, "<html><center><h1>502 Bad Gateway</h1></center></html>",
                         {"Server": "cloudflare", "CF-RAY": "8f1c2d3e4a5b6c7d-AMS", "CF-Cache-Status": "DYNAMIC"}),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's naming
        status, body, headers = ROUTES.get(self.path, (404, "not found", {}))
        data = json.dumps(body).encode() if isinstance(body, dict) else body.encode()
        self.send_response(status)
        ctype = "application/json" if isinstance(body, dict) else "text/html"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def version_string(self):
        return "gatewatch-demo"

    def log_message(self, *_args):
        pass


class DemoSite:
    """Context manager: serves on 127.0.0.1:<free port> in a thread."""

    def __enter__(self) -> DemoSite:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def targets(self) -> list[Target]:
        base = f"http://127.0.0.1:{self.port}"
        confirm = {"retries": 1, "delay_s": 0.2}
        return [
            Target.model_validate({
                "name": "demo-healthy", "url": f"{base}/api/v1/orders", "timeout_s": 3, "confirm": confirm,
                "expect": {"status": [200], "json": {"status": "ok"}, "max_latency_ms": 1000},
                "health": {"url": f"{base}/health", "expect_json": {"status": "ok"}},
            }),
            Target.model_validate({
                "name": "demo-failing", "url": f"{base}/api/v1/checkout", "method": "GET", "timeout_s": 3,
                "confirm": confirm, "health": {"url": f"{base}/health", "expect_json": {"status": "ok"}},
            }),
        ]
