"""Schemathesis hooks of scripts/schemathesis (loaded through SCHEMATHESIS_HOOKS).

`POST /api/v1/write` takes `application/x-protobuf` (a snappy block of a protobuf
Prometheus WriteRequest), a media type schemathesis has no serializer for: send whatever it
generates as raw bytes. The server must answer those with 204, 400, 401, 403, 413 or 415,
never a 5xx.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-protobuf")
def raw_bytes(ctx, value):
    if value is None:
        return None
    data = getattr(value, "data", value)  # schemathesis' Binary wrapper
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    return json.dumps(data).encode()
