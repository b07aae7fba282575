#!/usr/bin/env python3
"""A new TLS connection per request, for a bounded time: the handshake-bound mode of the benchmark.

Usage: handshake_load.py HOST PORT SERVER_NAME CA_FILE SECONDS WORKERS [--resume]

Each worker process loops: connect, TLS handshake (SNI = SERVER_NAME), send one
`GET / HTTP/1.1` with `Connection: close`, read the response to EOF, check the status.
With --resume every connection offers the session (ticket) of the worker's previous one.
Prints one JSON object: requests, errors, non2xx, resumed, seconds, p50_ms, p99_ms.
(wrk and h2load cannot open a connection per request; `openssl s_time` sends HTTP/1.0 without Host.)
"""
import json
import multiprocessing
import socket
import ssl
import sys
import time


def worker(host, port, name, ca, seconds, resume, out):
    context = ssl.create_default_context(cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    request = f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode()
    session = None
    ok = errors = non2xx = resumed = 0
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=5) as raw:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with context.wrap_socket(raw, server_hostname=name, session=session if resume else None) as tls:
                    tls.sendall(request)
                    chunks = []
                    while True:
                        try:
                            chunk = tls.recv(65536)
                        except (ssl.SSLEOFError, ConnectionResetError):
                            break
                        if not chunk:
                            break
                        chunks.append(chunk)
                    if tls.session_reused:
                        resumed += 1
                    if resume:
                        session = tls.session
            response = b"".join(chunks)
            if not response.startswith(b"HTTP/1.1 2") and not response.startswith(b"HTTP/1.0 2"):
                non2xx += 1
            ok += 1
            latencies.append(time.monotonic() - started)
        except (OSError, ssl.SSLError):
            errors += 1
            session = None
    out.put((ok, errors, non2xx, resumed, latencies))


def main():
    host, port, name, ca, seconds, workers = sys.argv[1:7]
    resume = "--resume" in sys.argv[7:]
    out = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=worker, args=(host, int(port), name, ca, float(seconds), resume, out))
        for _ in range(int(workers))
    ]
    started = time.monotonic()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    latencies = sorted(l for r in results for l in r[4])

    def pct(q):
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2) if latencies else None

    print(json.dumps({
        "requests": sum(r[0] for r in results),
        "errors": sum(r[1] for r in results),
        "non2xx": sum(r[2] for r in results),
        "resumed": sum(r[3] for r in results),
        "seconds": round(elapsed, 2),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }))


if __name__ == "__main__":
    main()
