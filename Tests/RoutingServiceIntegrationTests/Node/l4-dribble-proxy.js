// Forwards 127.0.0.1:LISTEN to 127.0.0.1:TARGET, sending the client's first COUNT bytes one byte per
// TCP segment (1 ms apart), so the gateway sees a ClientHello split byte by byte:
// `node l4-dribble-proxy.js TARGET COUNT`.
const net = require('net');
const [target, count] = process.argv.slice(2).map(Number);
const server = net.createServer((client) => {
  const upstream = net.connect(target, '127.0.0.1');
  upstream.setNoDelay(true);
  let dribbled = 0;
  const queue = [];
  let draining = false;
  const drain = () => {
    if (queue.length === 0) { draining = false; return; }
    draining = true;
    if (dribbled < count) {
      const chunk = queue[0];
      upstream.write(chunk.subarray(0, 1));
      dribbled += 1;
      if (chunk.length > 1) queue[0] = chunk.subarray(1); else queue.shift();
      setTimeout(drain, 1);
    } else {
      while (queue.length > 0) upstream.write(queue.shift());
      draining = false;
    }
  };
  client.on('data', (chunk) => { queue.push(chunk); if (!draining) drain(); });
  upstream.on('data', (chunk) => client.write(chunk));
  client.on('end', () => { const end = () => (queue.length || draining ? setTimeout(end, 5) : upstream.end()); end(); });
  upstream.on('end', () => client.end());
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
server.listen(0, '127.0.0.1', () => { console.log(`listening ${server.address().port}`); });
process.on('SIGTERM', () => process.exit(0));
