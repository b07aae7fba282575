// Demo app for the README: three copies run on 127.0.0.2-4 port 3000 behind edge-router.
// Usage: node demo/app.js HOST PORT INSTANCE_NAME
'use strict';
const http = require('http');
const [host = '127.0.0.2', port = '3000', instance = host] = process.argv.slice(2);

http.createServer((req, res) => {
  const body = JSON.stringify({
    answeredBy: instance,
    method: req.method,
    url: req.url,
    host: req.headers.host,
    forwardedFor: req.headers['x-forwarded-for'] || null,
    forwardedProto: req.headers['x-forwarded-proto'] || null,
  }, null, 2) + '\n';
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}).listen(Number(port), host, () => console.log(`demo instance ${instance} on http://${host}:${port}`));
process.on('SIGTERM', () => process.exit(0));
