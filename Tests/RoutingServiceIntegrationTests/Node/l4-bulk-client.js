// Sends BYTES through HOST:PORT to the echo instance and reads them back, with backpressure:
// `node l4-bulk-client.js HOST PORT BYTES`. Prints `ok SENT RECEIVED` when everything came back.
const net = require('net');
const [host, port, total] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const chunk = Buffer.alloc(256 * 1024, 0x61);
let sent = 0;
let received = 0;
let banner = null;
const socket = net.connect(port, host, () => {
  const pump = () => {
    while (sent < total) {
      const size = Math.min(chunk.length, total - sent);
      sent += size;
      if (!socket.write(size === chunk.length ? chunk : chunk.subarray(0, size))) { socket.once('drain', pump); return; }
    }
  };
  pump();
});
socket.on('data', (data) => {
  if (banner === null) {
    const newline = data.indexOf(10);
    banner = data.subarray(0, newline + 1).toString();
    data = data.subarray(newline + 1);
  }
  received += data.length;
  if (received >= total) { console.log(`ok ${sent} ${received}`); socket.destroy(); process.exit(0); }
});
socket.on('error', (error) => { console.log(`error ${error.message}`); process.exit(1); });
