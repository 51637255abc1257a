"""grpc core's two TCP stacks under grpc.aio: ``python -m bench.grpc_echo [--rounds 4]``.

An echo server and a client in two processes on loopback; the client sends 300-byte messages on
one bidirectional stream, one at a time, and times each round trip. Rounds alternate between the
EventEngine stack (grpcio's default since 1.80) and the iomgr stack that raftkv's commands ask for
(raftkv/cli/grpc_transport.py), with ``GRPC_EXPERIMENTS`` set before each process starts. Prints
the round-trip p50 and the client's CPU per round trip for every round. Nothing else should run
meanwhile. See bench/PROFILE.md section 6.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from raftkv.cli.grpc_transport import ENV_VAR, IOMGR_EXPERIMENTS

STACKS = {"eventengine": "", "iomgr": IOMGR_EXPERIMENTS}
PAYLOAD = b"x" * 300
METHOD = "/bench.Echo/Stream"


def _same(data: bytes) -> bytes:
    return data


async def _serve() -> None:
    import grpc
    from grpc import aio

    async def echo(requests, context):  # type: ignore[no-untyped-def]
        async for request in requests:
            yield request

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Stream": grpc.stream_stream_rpc_method_handler(echo, _same, _same)}
    )
    server = aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


async def _client(port: int, messages: int) -> None:
    from grpc import aio

    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stream = channel.stream_stream(
            METHOD, request_serializer=_same, response_deserializer=_same
        )
        call = stream()
        for _ in range(messages // 4):  # warm-up
            await call.write(PAYLOAD)
            await call.read()
        times = []
        cpu_start = time.process_time()
        for _ in range(messages):
            started = time.perf_counter()
            await call.write(PAYLOAD)
            await call.read()
            times.append(time.perf_counter() - started)
        cpu = (time.process_time() - cpu_start) / messages
        call.cancel()
    print(json.dumps({"p50_ms": statistics.median(times) * 1000, "cpu_ms": cpu * 1000}))


def _round(stack: str, messages: int) -> dict[str, float]:
    env = dict(os.environ, **{ENV_VAR: STACKS[stack]})
    me = [sys.executable, "-m", "bench.grpc_echo"]
    server = subprocess.Popen([*me, "--serve"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        out = subprocess.run(
            [*me, "--client", str(port), "--messages", str(messages)],
            env=env, capture_output=True, text=True, check=True, timeout=120,
        )
        result: dict[str, float] = json.loads(out.stdout)
        return result
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve())
        return
    if args.client:
        asyncio.run(_client(args.client, args.messages))
        return
    results: dict[str, list[dict[str, float]]] = {stack: [] for stack in STACKS}
    for number in range(args.rounds):
        order = list(STACKS) if number % 2 == 0 else list(reversed(STACKS))
        for stack in order:
            results[stack].append(_round(stack, args.messages))
    for stack, rounds in results.items():
        p50s = [r["p50_ms"] for r in rounds]
        cpus = [r["cpu_ms"] for r in rounds]
        print(f"{stack:<12} round trip p50 ms: median {statistics.median(p50s):.3f} "
              f"{[round(p, 3) for p in p50s]}; client CPU ms per round trip: "
              f"median {statistics.median(cpus):.3f}")


if __name__ == "__main__":
    main()
