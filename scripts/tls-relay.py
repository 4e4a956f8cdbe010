#!/usr/bin/env python3
"""Puts TLS between the lab's clients and servers, for scripts/record-tls-captures.

  --terminate LISTEN:TARGET   accept TLS on LISTEN (the certificate --cert/--key), relay plain bytes to TARGET
  --originate LISTEN:TARGET[:ALPN]  accept plain TCP on LISTEN, relay over TLS to TARGET, writing the key log (--keylog)

Ports only, on 127.0.0.1. --tls 1.2 or 1.3 caps the version the originating side offers. Every accepted connection
gets its own outgoing connection, so the clear-text leg and the TLS leg carry the same bytes.
"""
import argparse
import asyncio
import ssl
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


def relay(target_port, ctx=None, alpn=None):
    async def handle(reader, writer):
        try:
            r2, w2 = await asyncio.open_connection("127.0.0.1", target_port, ssl=ctx, server_hostname="localhost" if ctx else None)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, w2), pipe(r2, writer))
    return handle


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--terminate", action="append", default=[])
    p.add_argument("--originate", action="append", default=[])
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--keylog")
    p.add_argument("--tls", choices=["1.2", "1.3"], default="1.3")
    p.add_argument("--ready-file")
    a = p.parse_args()
    servers = []
    for spec in a.terminate:
        listen, target = (int(x) for x in spec.split(":"))
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(a.cert, a.key)
        sctx.set_alpn_protocols(["http/1.1", "mqtt"])
        servers.append(await asyncio.start_server(relay(target), "127.0.0.1", listen, ssl=sctx))
    for spec in a.originate:
        parts = spec.split(":")
        listen, target = int(parts[0]), int(parts[1])
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cctx.check_hostname = False
        cctx.verify_mode = ssl.CERT_NONE
        cctx.keylog_filename = a.keylog
        if a.tls == "1.2":
            cctx.maximum_version = ssl.TLSVersion.TLSv1_2
            # AEAD suites with ECDHE: what pilottrace decrypts (and a real cloud offers).
            cctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
        if len(parts) > 2:
            cctx.set_alpn_protocols([parts[2]])
        servers.append(await asyncio.start_server(relay(target, cctx), "127.0.0.1", listen))
    if a.ready_file:
        open(a.ready_file, "w").write("ready\n")
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
