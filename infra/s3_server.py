"""A real S3-protocol server on loopback for development and tests (moto's server).

    python -m sparsepipe.infra.s3_server --port 9000 --bucket sparsepipe

prints the environment to point sparsepipe at it, then serves until stopped:

    export AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    sparsepipe run full --store s3://sparsepipe/runs

For production use any S3-compatible store with conditional writes
(If-None-Match), e.g. AWS S3, MinIO or Cloudflare R2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

DEFAULT_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


def serve(host: str, port: int, buckets: list[str]) -> None:
    from moto.server import ThreadedMotoServer

    for name, value in DEFAULT_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    endpoint = f"http://{host}:{server._server.server_port if port == 0 else port}"
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)
    credentials = " ".join(f"{k}={os.environ[k]}" for k in DEFAULT_CREDENTIALS)
    print(f"export AWS_ENDPOINT_URL={endpoint} {credentials}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve an S3-compatible store on loopback (moto).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port (printed on the first line)")
    parser.add_argument(
        "--bucket", action="append", default=None, help="bucket to create (repeatable; default: sparsepipe)"
    )
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.bucket or ["sparsepipe"])


if __name__ == "__main__":
    main(sys.argv[1:])
