// The benchmark's instance: answers every request with a fixed 2-byte body, keep-alive, no work.
// Usage: node bench/upstream.js HOST PORT
'use strict';
const http = require('http');
const [host = '127.0.0.2', port = '3900'] = process.argv.slice(2);

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
  res.end('ok');
});
// Proxies hold pooled connections for up to a minute; do not close them under them.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.listen(Number(port), host);
process.on('SIGTERM', () => process.exit(0));
