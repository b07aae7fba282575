// HTTP/2 flow-control probe: opens one connection, sends COUNT POST streams of SIZE bytes each at once,
// waits for every response, lets WINDOW_UPDATEs arrive, then prints the statuses and how much the
// connection window lets this client send now.
// Usage: node h2-window-client.js PORT SERVERNAME CA_FILE COUNT SIZE
'use strict';
const http2 = require('http2');
const fs = require('fs');

const [port, servername, caFile, countText, sizeText] = process.argv.slice(2);
const count = Number(countText);
const body = Buffer.alloc(Number(sizeText), 'x');
const session = http2.connect(`https://${servername}:${port}`, {
  ca: fs.readFileSync(caFile), servername, host: '127.0.0.1', port: Number(port),
});
const timer = setTimeout(() => { console.log(JSON.stringify({ error: 'timed out' })); process.exit(2); }, 20000);
session.on('error', (error) => { console.log(JSON.stringify({ error: String(error) })); process.exit(2); });

session.on('remoteSettings', () => {
  const statuses = [];
  let done = 0;
  for (let index = 0; index < count; index++) {
    const stream = session.request({ ':method': 'POST', ':path': '/upload', 'content-length': String(body.length) });
    stream.on('response', (headers) => statuses.push(headers[':status']));
    stream.on('data', () => {});
    stream.on('error', () => {});
    stream.on('close', () => {
      done += 1;
      if (done === count) {
        // Give the gateway's WINDOW_UPDATEs time to arrive.
        setTimeout(() => {
          clearTimeout(timer);
          console.log(JSON.stringify({ statuses, remoteWindowSize: session.state.remoteWindowSize }));
          session.close();
        }, 500);
      }
    });
    stream.end(body);
  }
});
