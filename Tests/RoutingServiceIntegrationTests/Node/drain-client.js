// Client side of the drain tests: holds TLS connections to the gateway in known states, prints
// "READY <epoch ms>" once they are there (the test then starts the drain), records what the gateway
// does to each connection, and prints one JSON line "RESULT {...}" when every connection has ended
// (or after a hard limit). No npm: Node's standard library only.
// Usage: node drain-client.js MODE PORT SERVER_NAME CA_FILE SLOW_MS
//   MODE http1: four HTTP/1 connections
//     idle        GET /echo answered, then nothing (a kept-alive idle connection)
//     inflight11  GET /slow?ms=SLOW_MS (HTTP/1.1) in flight
//     inflight10  GET /slow?ms=SLOW_MS (HTTP/1.0, Connection: keep-alive) in flight
//     pipelined   GET /slow?ms=SLOW_MS and GET /echo?second sent together
//   MODE http2: one HTTP/2 connection (raw frames) with stream 1 GET /slow?ms=SLOW_MS in flight;
//     after the first GOAWAY it opens stream 3 (GET /echo?between), after the second stream 5
//     (GET /echo?after).
'use strict';
const tls = require('tls');
const fs = require('fs');

const [mode, portText, serverName, caFile, slowText] = process.argv.slice(2);
const port = Number(portText);
const slow = Number(slowText);
const ca = fs.readFileSync(caFile);
const results = {};
const connections = [];
let readyPrinted = false;
let finished = false;

function finish() {
  if (finished) return;
  finished = true;
  console.log('RESULT ' + JSON.stringify(results));
  process.exit(0);
}
setTimeout(finish, 15000);

function connect(name, alpn, onConnect, onData) {
  const record = { received: '', endedAt: null, error: null };
  results[name] = record;
  connections.push(record);
  const socket = tls.connect({ host: '127.0.0.1', port, servername: serverName, ca, ALPNProtocols: [alpn] }, () => onConnect(socket));
  socket.on('data', (data) => {
    if (alpn !== 'h2') record.received += data.toString('latin1');
    if (onData) onData(socket, data);
  });
  socket.on('error', (error) => { record.error = String(error.code || error.message); });
  socket.on('close', () => {
    record.endedAt = Date.now();
    if (connections.every((r) => r.endedAt !== null)) finish();
  });
  return record;
}

function ready() {
  if (readyPrinted) return;
  readyPrinted = true;
  console.log('READY ' + Date.now());
}

if (mode === 'http1') {
  const host = `Host: ${serverName}\r\n`;
  const slowRequest = (version, extra) => `GET /slow?ms=${slow} HTTP/1.${version}\r\n${host}${extra}\r\n`;
  let started = 0;
  const oneStarted = () => { started += 1; if (started === 4) setTimeout(ready, 300); };
  const idle = connect('idle', 'http/1.1', (s) => s.write(`GET /echo HTTP/1.1\r\n${host}\r\n`), () => {
    // The answer arrived (its body is small: one read): from now on the connection is idle.
    if (idle.received.includes('"url":"/echo"')) oneStarted();
  });
  connect('inflight11', 'http/1.1', (s) => { s.write(slowRequest(1, '')); oneStarted(); });
  connect('inflight10', 'http/1.1', (s) => { s.write(slowRequest(0, 'Connection: keep-alive\r\n')); oneStarted(); });
  connect('pipelined', 'http/1.1', (s) => {
    s.write(slowRequest(1, '') + `GET /echo?second HTTP/1.1\r\n${host}\r\n`);
    oneStarted();
  });
} else if (mode === 'http2') {
  const frame = (type, flags, stream, payload) => {
    const header = Buffer.alloc(9);
    header.writeUIntBE(payload.length, 0, 3);
    header[3] = type;
    header[4] = flags;
    header.writeUInt32BE(stream, 5);
    return Buffer.concat([header, payload]);
  };
  // HPACK: indexed :method GET and :scheme https, literal :path and :authority (indexed names).
  const get = (stream, path) => {
    const block = Buffer.concat([
      Buffer.from([0x82, 0x87, 0x04, path.length]), Buffer.from(path),
      Buffer.from([0x01, serverName.length]), Buffer.from(serverName),
    ]);
    return frame(0x1, 0x5, stream, block); // END_STREAM | END_HEADERS
  };
  const streams = {};
  const goAways = [];
  results.goAways = goAways;
  results.streams = streams;
  let pending = Buffer.alloc(0);
  connect('connection', 'h2', (socket) => {
    if (socket.alpnProtocol !== 'h2') { results.alpn = socket.alpnProtocol; socket.destroy(); return; }
    socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(0x4, 0, 0, Buffer.alloc(0)), get(1, `/slow?ms=${slow}`)]));
    streams[1] = { sentAt: Date.now(), status200: null, body: '', ended: false, reset: null };
  }, (socket, data) => {
    pending = Buffer.concat([pending, data]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      const type = pending[3];
      const flags = pending[4];
      const stream = pending.readUInt32BE(5) & 0x7fffffff;
      const payload = pending.subarray(9, 9 + length);
      pending = pending.subarray(9 + length);
      const entry = streams[stream];
      if (type === 0x4 && (flags & 0x1) === 0) {
        socket.write(frame(0x4, 0x1, 0, Buffer.alloc(0))); // SETTINGS ACK
        setTimeout(ready, 300);
      } else if (type === 0x7) {
        const last = payload.readUInt32BE(0) & 0x7fffffff;
        goAways.push({ lastStreamID: last, code: payload.readUInt32BE(4), at: Date.now() });
        const next = goAways.length === 1 ? [3, '/echo?between'] : goAways.length === 2 ? [5, '/echo?after'] : null;
        if (next) {
          streams[next[0]] = { sentAt: Date.now(), status200: null, body: '', ended: false, reset: null };
          socket.write(get(next[0], next[1]));
        }
      } else if (type === 0x1 && entry) {
        // nghttp2 sends :status 200 as the static-table index 8 (0x88), first in the block (after
        // the pad length and priority fields when there are any).
        const offset = ((flags & 0x8) ? 1 : 0) + ((flags & 0x20) ? 5 : 0);
        entry.status200 = payload[offset] === 0x88;
        if (flags & 0x1) entry.ended = true;
      } else if (type === 0x0 && entry) {
        const padded = (flags & 0x8) !== 0;
        const body = padded ? payload.subarray(1, payload.length - payload[0]) : payload;
        entry.body += body.toString('utf8');
        if (flags & 0x1) entry.ended = true;
      } else if (type === 0x3 && entry) {
        entry.reset = payload.readUInt32BE(0);
      } else if (type === 0x6 && (flags & 0x1) === 0) {
        socket.write(frame(0x6, 0x1, 0, payload)); // PING ACK
      }
    }
  });
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
// Safety net: if the test process dies without stopping us, exit once we are orphaned.
const parent = process.ppid;
setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 500).unref();
