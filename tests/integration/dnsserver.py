"""A tiny authoritative DNS server on loopback for the resolve tests
(RFC 1035 wire format, UDP, stdlib only).  Records are set and changed
while it runs; `mode` makes it answer SERVFAIL or not at all."""
import socket
import struct
import threading

TYPES = {"A": 1, "AAAA": 28, "SRV": 33}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def decode_name(msg, off):
    labels = []
    while msg[off]:
        n = msg[off]
        labels.append(msg[off + 1:off + 1 + n].decode())
        off += 1 + n
    return ".".join(labels).lower(), off + 1


class DnsServer:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.records = {}           # (name, type) -> list of rdata values
        self.mode = "answer"        # "answer", "servfail", "drop"
        self.queries = 0
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def set(self, name, rtype, values):
        """values: A/AAAA address strings; SRV (priority, weight, port, target)."""
        with self.lock:
            self.records[(name.lower().rstrip("."), TYPES[rtype])] = list(values)

    def _rdata(self, qtype, v):
        if qtype == 1:
            return socket.inet_pton(socket.AF_INET, v)
        if qtype == 28:
            return socket.inet_pton(socket.AF_INET6, v)
        prio, weight, port, target = v
        return struct.pack(">HHH", prio, weight, port) + encode_name(target)

    def _answer(self, msg):
        qid, flags = struct.unpack(">HH", msg[:4])
        name, off = decode_name(msg, 12)
        qtype, = struct.unpack(">H", msg[off:off + 2])
        question = msg[12:off + 4]
        with self.lock:
            self.queries += 1
            mode = self.mode
            values = self.records.get((name, qtype))
            known = any(n == name for n, _ in self.records)
        rd = flags & 0x0100
        if mode == "drop":
            return None
        if mode == "servfail":
            return struct.pack(">HHHHHH", qid, 0x8080 | rd | 2, 1, 0, 0, 0) + question
        if values is None:
            rcode = 0 if known else 3           # NODATA or NXDOMAIN
            return struct.pack(">HHHHHH", qid, 0x8480 | rd | rcode, 1, 0, 0, 0) + question
        ans = b""
        for v in values:
            rdata = self._rdata(qtype, v)
            ans += struct.pack(">HHHIH", 0xC00C, qtype, 1, 5, len(rdata)) + rdata
        return struct.pack(">HHHHHH", qid, 0x8480 | rd, 1, len(values), 0, 0) + question + ans

    def _run(self):
        self.sock.settimeout(0.2)
        while self.running:
            try:
                msg, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                out = self._answer(msg)
            except (IndexError, struct.error, UnicodeDecodeError):
                continue
            if out:
                self.sock.sendto(out, peer)

    def stop(self):
        self.running = False
        self.thread.join()
        self.sock.close()
