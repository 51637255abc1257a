"""A TCP proxy that delays every byte by a fixed (optionally jittered) time: "delay on some links".

This kernel has no tc netem, so latency is injected here: point a node's peer address for one link
at a proxy (run inside that node's namespace) that forwards to the real peer.

Rules kept here:
- Bytes are never reordered or dropped: each chunk is due at ``arrival + delay (+ jitter)``, and
  due times never decrease within a direction, so jitter cannot reorder a stream.
- Each direction buffers at most ``max_chunks`` chunks; a full buffer stops reading (backpressure)
  rather than growing without bound.
- EOF is forwarded after the delay (a reset arrives as EOF); once both directions are done the
  connection is closed on both sides; ``close`` ends every connection at once.
- Runnable as a script inside a namespace: ``python tests/chaos/delay_proxy.py
  --listen 127.0.0.1:9000 --target 10.77.3.2:7000 --delay-ms 50 [--jitter-ms 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
from collections.abc import Coroutine
from typing import Any

_EOF = b""


class DelayProxy:
    def __init__(
        self,
        *,
        listen_host: str,
        target_host: str,
        target_port: int,
        delay_s: float,
        listen_port: int = 0,
        jitter_s: float = 0.0,
        seed: int = 0,
        max_chunks: int = 1024,
    ) -> None:
        self.listen_host, self.listen_port = listen_host, listen_port
        self.target_host, self.target_port = target_host, target_port
        self.delay_s, self.jitter_s = delay_s, jitter_s
        self._rng = random.Random(seed)
        self._max_chunks = max_chunks
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def set_delay(self, delay_s: float, jitter_s: float = 0.0) -> None:
        """Change the delay for bytes arriving from now on."""
        self.delay_s, self.jitter_s = delay_s, jitter_s

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.listen_port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> DelayProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.add(client_w)
        try:
            server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_w.close()  # the target is down: the client sees a closed connection
            self._writers.discard(client_w)
            return
        self._writers.add(server_w)
        self._spawn(self._connection(client_r, client_w, server_r, server_w))

    async def _connection(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> None:
        try:
            await asyncio.gather(
                self._direction(client_r, server_w), self._direction(server_r, client_w)
            )
        finally:
            for writer in (client_w, server_w):
                writer.close()
                self._writers.discard(writer)

    async def _direction(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(self._max_chunks)

        async def pump() -> None:
            last_due = 0.0
            while True:
                try:
                    chunk = await reader.read(65536)
                except (ConnectionError, OSError):
                    chunk = _EOF
                jitter = self._rng.uniform(0, self.jitter_s) if self.jitter_s > 0 else 0.0
                last_due = max(last_due, loop.time() + self.delay_s + jitter)
                await queue.put((last_due, chunk))
                if chunk == _EOF:
                    return

        pumping = asyncio.ensure_future(pump())
        try:
            while True:
                due, chunk = await queue.get()
                wait_s = due - loop.time()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)  # the delay itself, not synchronization
                if chunk == _EOF:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pumping


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _serve(args: argparse.Namespace) -> None:
    target_host, target_port = _host_port(args.target)
    listen_host, listen_port = _host_port(args.listen)
    proxy = DelayProxy(
        listen_host=listen_host,
        listen_port=listen_port,
        target_host=target_host,
        target_port=target_port,
        delay_s=args.delay_ms / 1000,
        jitter_s=args.jitter_ms / 1000,
        seed=args.seed,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with proxy:
        sys.stdout.write(f"listening {listen_host}:{proxy.port}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="TCP proxy adding a delay to every byte")
    parser.add_argument("--listen", required=True, help="HOST:PORT (port 0 = any)")
    parser.add_argument("--target", required=True, help="HOST:PORT")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    asyncio.run(_serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
