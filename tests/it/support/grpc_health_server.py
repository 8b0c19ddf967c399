"""The reference gRPC health server for healthd's tests and benchmark: grpc.health.v1 as
implemented by the official `grpcio-health-checking` package
(grpc_health.v1.health.HealthServicer), with the whole server ("") SERVING.

    grpc_health_server.py [--port N] [--until-killed]

Listens on 127.0.0.1 (port N, or a free one) and prints `port N`. Then reads lines
`STATUS SERVICE` from stdin (STATUS: SERVING, NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN; SERVICE
may be empty, the whole server), sets them and answers `ok`. Exits when stdin closes, or
with --until-killed keeps serving until SIGTERM/SIGINT.
Started by tests/it/support/grpc.rs (PythonPeer) and bench/bench.py, with the venv that
scripts/python-venv creates.
"""

import argparse
import signal
import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--until-killed", action="store_true")
    args = ap.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    server.start()
    print(f"port {port}", flush=True)
    for line in sys.stdin:
        status, _, service = line.rstrip("\n").partition(" ")
        servicer.set(service, health_pb2.HealthCheckResponse.ServingStatus.Value(status))
        print("ok", flush=True)
    if args.until_killed:
        signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
        server.wait_for_termination()
    server.stop(0)


if __name__ == "__main__":
    main()
