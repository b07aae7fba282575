// TCP echo instance for the L4 tests: `node l4-tcp-echo.js HOST PORT ID`.
// Greets each connection with `instance=ID\n`, echoes every byte, and keeps the connection open
// until the client ends it; on the client's FIN it answers `bye N\n` (N bytes received) and ends.
const net = require('net');
const [host, port, id] = process.argv.slice(2);
const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  let received = 0;
  socket.setNoDelay(true);
  socket.write(`instance=${id}\n`);
  socket.on('data', (chunk) => {
    received += chunk.length;
    if (!socket.write(chunk)) { socket.pause(); socket.once('drain', () => socket.resume()); }
  });
  socket.on('end', () => { socket.end(`bye ${received}\n`); });
  socket.on('error', () => {});
});
server.listen(Number(port), host, () => { console.log(`listening ${server.address().port}`); });
process.on('SIGTERM', () => process.exit(0));
