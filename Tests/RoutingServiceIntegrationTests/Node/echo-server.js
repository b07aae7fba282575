// Test instance for the edge-router integration tests. No npm: Node's standard library only.
// Usage: node echo-server.js HOST PORT INSTANCE_ID
//   GET  /echo          -> JSON {instance, method, url, httpVersion, headers, rawHeaders}
//   GET  /slow?ms=N     -> waits N ms, then answers like /echo
//   GET  /bytes?n=N     -> streams N bytes (64 KiB chunks, respecting backpressure)
//   POST /upload        -> counts the request body bytes, answers {instance, bytes};
//                          with ?rate=N (bytes/s) it reads no faster than that (a slow instance)
//   POST /mirror        -> streams the request body back as the response body (chunked)
//   GET  /stats         -> {instance, connections (TCP accepted), requests, active}
//   GET  /healthz       -> 200 ok, or 503 after POST /sick (until POST /well)
//   WebSocket upgrade on any path -> echoes text/binary frames back (RFC 6455, hand-rolled)
'use strict';
const http = require('http');
const crypto = require('crypto');

const [host, portText, instance] = process.argv.slice(2);
const port = Number(portText);
let connections = 0;
let requests = 0;
let active = 0;
let sick = false;

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function echoBody(req) {
  return { instance, method: req.method, url: req.url, httpVersion: req.httpVersion,
           headers: req.headers, rawHeaders: req.rawHeaders };
}

const server = http.createServer((req, res) => {
  requests += 1;
  active += 1;
  res.on('close', () => { active -= 1; });
  const url = new URL(req.url, 'http://x');
  switch (url.pathname) {
    case '/echo':
      req.resume();
      req.on('end', () => json(res, 200, echoBody(req)));
      return;
    case '/slow': {
      const ms = Number(url.searchParams.get('ms') || '1000');
      req.resume();
      const timer = setTimeout(() => json(res, 200, echoBody(req)), ms);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    case '/bytes': {
      req.resume();
      let left = Number(url.searchParams.get('n') || '0');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': left, 'x-instance': instance });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) { res.once('drain', pump); return; }
        }
        res.end();
      };
      pump();
      return;
    }
    case '/upload': {
      let bytes = 0;
      const rate = Number(url.searchParams.get('rate') || '0');
      const started = Date.now();
      req.on('data', (d) => {
        bytes += d.length;
        if (rate > 0) {
          // Ahead of the rate: stop reading until the clock catches up.
          const due = started + (bytes / rate) * 1000;
          const wait = due - Date.now();
          if (wait > 0) {
            req.pause();
            setTimeout(() => req.resume(), wait);
          }
        }
      });
      req.on('end', () => json(res, 200, { instance, bytes }));
      return;
    }
    case '/mirror':
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-instance': instance });
      req.pipe(res);
      return;
    case '/stats':
      req.resume();
      json(res, 200, { instance, connections, requests, active });
      return;
    case '/healthz':
      req.resume();
      res.writeHead(sick ? 503 : 200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end(sick ? 'no' : 'ok');
      return;
    case '/sick':
    case '/well':
      req.resume();
      sick = url.pathname === '/sick';
      json(res, 200, { instance, sick });
      return;
    default:
      req.resume();
      json(res, 404, { instance, error: 'no such path', url: req.url });
  }
});

server.keepAliveTimeout = 120000;
server.headersTimeout = 130000;
server.on('connection', () => { connections += 1; });

// WebSocket: handshake and frame echo by hand.
server.on('upgrade', (req, socket, head) => {
  const key = req.headers['sec-websocket-key'];
  if ((req.headers.upgrade || '').toLowerCase() !== 'websocket' || !key) {
    socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  const accept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
               `Sec-WebSocket-Accept: ${accept}\r\nX-Instance: ${instance}\r\n\r\n`);
  let buffered = head && head.length ? Buffer.from(head) : Buffer.alloc(0);
  const onData = (data) => {
    buffered = Buffer.concat([buffered, data]);
    for (;;) {
      if (buffered.length < 2) return;
      const opcode = buffered[0] & 0x0f;
      const masked = (buffered[1] & 0x80) !== 0;
      let length = buffered[1] & 0x7f;
      let offset = 2;
      if (length === 126) { if (buffered.length < 4) return; length = buffered.readUInt16BE(2); offset = 4; }
      else if (length === 127) { if (buffered.length < 10) return; length = Number(buffered.readBigUInt64BE(2)); offset = 10; }
      const maskOffset = offset;
      if (masked) offset += 4;
      if (buffered.length < offset + length) return;
      const payload = Buffer.from(buffered.subarray(offset, offset + length));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= buffered[maskOffset + (i % 4)];
      buffered = buffered.subarray(offset + length);
      if (opcode === 0x8) { socket.end(Buffer.from([0x88, 0x00])); return; }
      // Echo unmasked (server to client), prefixed with the instance id for text frames.
      const out = opcode === 0x1 ? Buffer.from(`${instance}:${payload.toString('utf8')}`) : payload;
      let header;
      if (out.length < 126) header = Buffer.from([0x80 | opcode, out.length]);
      else if (out.length < 65536) { header = Buffer.alloc(4); header[0] = 0x80 | opcode; header[1] = 126; header.writeUInt16BE(out.length, 2); }
      else { header = Buffer.alloc(10); header[0] = 0x80 | opcode; header[1] = 127; header.writeBigUInt64BE(BigInt(out.length), 2); }
      socket.write(Buffer.concat([header, out]));
    }
  };
  socket.on('data', onData);
  socket.on('error', () => {});
  if (buffered.length) onData(Buffer.alloc(0));
});

server.listen(port, host, () => { console.log(`instance ${instance} listening on ${host}:${port}`); });
process.on('SIGTERM', () => process.exit(0));
// Safety net: if the test process dies without stopping us (a crash), exit once we are orphaned.
const parent = process.ppid;
setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 500).unref();
