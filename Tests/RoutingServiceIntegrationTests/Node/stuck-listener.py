# An instance whose connections never complete: it listens with the smallest backlog, fills its accept
# queue itself and never accepts, so the kernel drops every further SYN and a connect to it hangs until
# the connecting side gives up. Prints "ready" once the queue is full; runs until killed.
# Usage: python3 stuck-listener.py HOST PORT
import socket
import sys
import time

host, port = sys.argv[1], int(sys.argv[2])
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((host, port))
listener.listen(0)
fillers = []
for _ in range(4):
    filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    filler.setblocking(False)
    try:
        filler.connect((host, port))
    except BlockingIOError:
        pass
    fillers.append(filler)
time.sleep(0.5)
print("ready", flush=True)
while True:
    time.sleep(3600)
