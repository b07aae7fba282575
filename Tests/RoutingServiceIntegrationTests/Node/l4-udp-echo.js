// UDP echo instance for the L4 tests: `node l4-udp-echo.js HOST PORT ID`.
// Small datagrams come back as `ID:SOURCEPORT:payload` (which instance, which upstream socket);
// datagrams of 1024 bytes or more come back unchanged.
const dgram = require('dgram');
const [host, port, id] = process.argv.slice(2);
const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
socket.on('message', (msg, rinfo) => {
  const reply = msg.length >= 1024 ? msg : Buffer.concat([Buffer.from(`${id}:${rinfo.port}:`), msg]);
  socket.send(reply, rinfo.port, rinfo.address);
});
socket.bind(Number(port), host, () => { console.log(`listening ${socket.address().port}`); });
process.on('SIGTERM', () => process.exit(0));
