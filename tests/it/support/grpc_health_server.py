"""The reference gRPC health server for healthd's tests: grpc.health.v1 as implemented by
the official `grpcio-health-checking` package (grpc_health.v1.health.HealthServicer).

Listens on a free 127.0.0.1 port and prints `port N`. Then reads lines `STATUS SERVICE`
from stdin (STATUS: SERVING, NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN; SERVICE may be empty,
the whole server), sets them and answers `ok`. Exits when stdin closes.
Started by tests/it/support/grpc.rs (PythonPeer) with the venv scripts/test creates.
"""

import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    server.start()
    print(f"port {port}", flush=True)
    for line in sys.stdin:
        status, _, service = line.rstrip("\n").partition(" ")
        servicer.set(service, health_pb2.HealthCheckResponse.ServingStatus.Value(status))
        print("ok", flush=True)
    server.stop(0)


if __name__ == "__main__":
    main()
