"""kubelet's gRPC probe, played by the official Python client (grpcio-health-checking):
asks healthd's grpc.health.v1 service for each service named on the command line and prints
one line per answer, `SERVICE STATUS` (a serving status, or the gRPC status code name)."""
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

address, services = sys.argv[1], sys.argv[2:]
with grpc.insecure_channel(address) as channel:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in services:
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        except grpc.RpcError as e:
            status = e.code().name
        print(f"{service or '(overall)'} {status}", flush=True)
