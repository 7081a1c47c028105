"""An OTLP/HTTP metrics receiver for the `otlp` publisher's tests: an independent decoder.

It decodes each `POST /v1/metrics` with the official OpenTelemetry protobuf bindings (PyPI
`opentelemetry-proto`), not with skymeter's code, and appends what it got to `--out` as one
JSON line per request: {"headers": {...}, "request": <ExportMetricsServiceRequest as JSON,
proto field names>}. It answers as the OTLP spec says: 200 with an
ExportMetricsServiceResponse; `--refuse-first N` answers the first N requests 503 with
`Retry-After: 0` (a retryable refusal). Listens on 127.0.0.1 only; prints `ready` once
listening.

Usage: receiver.py --port PORT --out FILE [--refuse-first N]
"""

import argparse
import gzip
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--refuse-first", type=int, default=0)
    args = ap.parse_args()
    state = {"refuse": args.refuse_first}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def answer(self, status, body=b"", ctype="application/x-protobuf", extra=()):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/metrics":
                return self.answer(404, b"not found", "text/plain")
            if state["refuse"] > 0:
                state["refuse"] -= 1
                return self.answer(503, b"", extra=[("Retry-After", "0")])
            if self.headers.get("Content-Type") != "application/x-protobuf":
                return self.answer(415, b"protobuf only", "text/plain")
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            req = metrics_service_pb2.ExportMetricsServiceRequest()
            try:
                req.ParseFromString(body)
            except Exception as e:  # a body that is not the message: the spec's 400
                return self.answer(400, str(e).encode(), "text/plain")
            line = {
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "request": MessageToDict(req, preserving_proto_field_name=True),
            }
            with open(args.out, "a") as f:
                f.write(json.dumps(line) + "\n")
            resp = metrics_service_pb2.ExportMetricsServiceResponse()
            self.answer(200, resp.SerializeToString())

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
