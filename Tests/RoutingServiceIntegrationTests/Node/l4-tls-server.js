// TLS instance for the SNI passthrough tests: `node l4-tls-server.js HOST PORT ID CERT KEY`.
// Answers the first line with `pong from ID: LINE` and ends the connection.
const tls = require('tls');
const fs = require('fs');
const [host, port, id, cert, key] = process.argv.slice(2);
const server = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (socket) => {
  let text = '';
  socket.on('data', (chunk) => {
    text += chunk.toString();
    const newline = text.indexOf('\n');
    if (newline >= 0) socket.end(`pong from ${id}: ${text.slice(0, newline)}\n`);
  });
  socket.on('error', () => {});
});
server.on('tlsClientError', () => {});
server.listen(Number(port), host, () => { console.log(`listening ${server.address().port}`); });
process.on('SIGTERM', () => process.exit(0));
