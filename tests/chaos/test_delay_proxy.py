"""The delaying proxy: bytes arrive intact, in order, late by the configured delay."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from tests.chaos.delay_proxy import DelayProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _round_trip(port: int, payloads: list[bytes]) -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    for p in payloads:
        writer.write(p)
        await writer.drain()
    expected = sum(len(p) for p in payloads)
    received = await asyncio.wait_for(reader.readexactly(expected), timeout=10)
    elapsed = time.monotonic() - started
    writer.close()
    return received, elapsed


def test_delay_applies_each_way_and_keeps_bytes_in_order() -> None:
    async def scenario() -> None:
        echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
        echo_port = echo.sockets[0].getsockname()[1]
        async with DelayProxy(
            listen_host="127.0.0.1", target_host="127.0.0.1", target_port=echo_port,
            delay_s=0.15, jitter_s=0.05, seed=1,
        ) as proxy:
            payloads = [f"chunk-{i:04d};".encode() * 50 for i in range(200)]
            received, elapsed = await _round_trip(proxy.port, payloads)
            assert received == b"".join(payloads)  # jitter never reorders
            assert 0.3 <= elapsed < 3.0, elapsed  # delayed on the way there and back
            proxy.set_delay(0.0)
            _, fast = await _round_trip(proxy.port, [b"x"])
            assert fast < 0.2, fast
        echo.close()
        await echo.wait_closed()

    asyncio.run(scenario())


def test_close_ends_open_connections() -> None:
    async def scenario() -> None:
        echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
        proxy = DelayProxy(
            listen_host="127.0.0.1", target_host="127.0.0.1",
            target_port=echo.sockets[0].getsockname()[1], delay_s=0.01,
        )
        await proxy.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.readexactly(2), timeout=5) == b"hi"
        await asyncio.wait_for(proxy.close(), timeout=5)
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed by the proxy
        writer.close()
        echo.close()
        await echo.wait_closed()

    asyncio.run(scenario())


def test_runs_as_a_script() -> None:
    async def scenario() -> None:
        echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
        script = Path(__file__).with_name("delay_proxy.py")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(script), "--listen", "127.0.0.1:0",
            "--target", f"127.0.0.1:{echo.sockets[0].getsockname()[1]}", "--delay-ms", "100",
            stdout=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode()
            port = int(line.rsplit(":", 1)[1])
            received, elapsed = await _round_trip(port, [b"ping"])
            assert received == b"ping" and elapsed >= 0.2
        finally:
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
        echo.close()
        await echo.wait_closed()

    asyncio.run(scenario())
