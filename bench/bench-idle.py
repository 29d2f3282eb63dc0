"""Idle memory per proxied connection: RSS growth of PID while N idle
client connections are open through PORT, divided by N (bytes).  PID may be
a comma-separated list (a proxy's worker processes): their RSS is summed.

    python3 bench/bench-idle.py PID[,PID...] PORT N
"""
import resource
import socket
import sys
import time


def rss(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def main():
    pid, port, n = [int(p) for p in sys.argv[1].split(",")], int(sys.argv[2]), int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    # warm up: let the proxy reach its steady state before the baseline
    warm = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    time.sleep(0.5)
    for s in warm:
        s.close()
    time.sleep(1.0)
    before = rss(pid)
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        socks.append(s)
    time.sleep(1.5)             # connections established to the backends too
    after = rss(pid)
    for s in socks:
        s.close()
    print(max(0, after - before) // n)


if __name__ == "__main__":
    main()
