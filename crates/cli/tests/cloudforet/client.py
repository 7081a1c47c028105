"""A Cloudforet-side client of `skymeter cloudforet-plugin`, on the `spaceone-api` package's
generated stubs (the ones Cloudforet's inventory service is built on), grpcio, and
grpcio-reflection / grpcio-health-checking.

    client.py ADDR  < calls.json  > results.json

calls.json is a list of calls, each {"method": "init" | "verify" | "collect" | "services" |
"health", ...request fields}; the answer is the list of their results, each
{"ok": true, "result": ...} or {"ok": false, "code": "UNAUTHENTICATED", "details": "..."},
in order. Requests and answers are converted with protobuf's json_format, so every Struct
is plain JSON.
"""

import json
import os
import sys

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from spaceone.api.inventory.plugin import collector_pb2, collector_pb2_grpc

COLLECTOR = "spaceone.api.inventory.plugin.Collector"


def as_dict(message):
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def request(message_type, call):
    fields = {k: v for k, v in call.items() if k != "method"}
    return json_format.ParseDict(fields, message_type())


def run(channel, call):
    stub = collector_pb2_grpc.CollectorStub(channel)
    method = call["method"]
    if method == "init":
        return as_dict(stub.init(request(collector_pb2.InitRequest, call), timeout=30))
    if method == "verify":
        return as_dict(stub.verify(request(collector_pb2.VerifyRequest, call), timeout=30))
    if method == "collect":
        stream = stub.collect(
            request(collector_pb2.CollectRequest, call),
            timeout=float(os.environ.get("CLOUDFORET_COLLECT_TIMEOUT", "120")),
        )
        return [as_dict(info) for info in stream]
    if method == "services":
        # What Cloudforet's own client does: reflection v1alpha, then the service's
        # descriptor (and its methods) from the files the server sends.
        db = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(db.get_services())
        pool = DescriptorPool(db)
        collector = pool.FindServiceByName(COLLECTOR)
        # Reflection v1 has v1alpha's messages under another package name: the same
        # messages, sent to the v1 method, list the services too.
        v1 = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        answers = list(v1(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
        return {
            "services": services,
            "services_v1": sorted(s.name for s in answers[0].list_services_response.service),
            "collector_methods": [m.name for m in collector.methods],
        }
    if method == "health":
        stub = health_pb2_grpc.HealthStub(channel)
        out = {}
        for service in ["", COLLECTOR]:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            out[service or "(server)"] = health_pb2.HealthCheckResponse.ServingStatus.Name(
                answer.status
            )
        return out
    raise ValueError(f"unknown method {method}")


def main():
    addr = sys.argv[1]
    calls = json.load(sys.stdin)
    results = []
    with grpc.insecure_channel(addr) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        for call in calls:
            try:
                results.append({"ok": True, "result": run(channel, call)})
            except grpc.RpcError as e:
                results.append({"ok": False, "code": e.code().name, "details": e.details()})
    json.dump(results, sys.stdout)
    print()


if __name__ == "__main__":
    main()
