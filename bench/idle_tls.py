#!/usr/bin/env python3
"""Opens N TLS connections to HOST:PORT, completes every handshake, then holds them open.

Usage: idle_tls.py HOST PORT SERVER_NAME CA_FILE N
Prints `ready OPENED FAILED` on stdout once all handshakes are done, then holds the connections
until stdin closes (or a line is written to it), and exits closing them all.
"""
import asyncio
import ssl
import sys


async def main():
    host, port, name, ca, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    context = ssl.create_default_context(cafile=ca)
    gate = asyncio.Semaphore(64)  # handshakes in flight at once
    writers = []
    failed = 0

    async def open_one():
        nonlocal failed
        async with gate:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, ssl=context, server_hostname=name), timeout=30
                )
                writers.append(writer)
            except (OSError, ssl.SSLError, asyncio.TimeoutError):
                failed += 1

    await asyncio.gather(*(open_one() for _ in range(count)))
    print(f"ready {len(writers)} {failed}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for writer in writers:
        writer.transport.abort()


asyncio.run(main())
