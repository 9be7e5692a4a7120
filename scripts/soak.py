"""The soak of scripts/soak: `netmem recv --framed` under a mix of senders.

Senders speak the frame format of DESIGN.md on their own (this file does not use Netmem):
good ones send frames of 1 byte to the maximum payload and remember the SHA-256 of their
payloads; bad ones send a wrong magic, an oversized length or a wrong CRC; others reset
mid-frame, trickle until the receiver's frame timeout ends them, or open and close at a
high rate. The receiver's resident memory and descriptors are sampled from /proc, its
counters from its metrics endpoint.
"""
import collections
import hashlib
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

MAX_PAYLOAD = 1 << 20
FRAME_TIMEOUT = 5
MAGIC = 0x4D454D4E

_table = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _table.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def header(length, seq, crc=None, magic=MAGIC, header_length=32):
    flags = 1 if crc is not None else 0
    return struct.pack('<IBBHIIQII', magic, 1, flags, header_length, 7, length, seq, crc or 0, 0)


def frame(payload, seq):
    crc = crc32c(payload) if len(payload) <= 16384 else None
    return header(len(payload), seq, crc) + payload


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.good = collections.Counter()  # digest -> how many good connections sent it

    def add(self, kind, digest=None):
        with self.lock:
            self.counts[kind] += 1
            if digest:
                self.good[digest] += 1


def connect(port):
    s = socket.create_connection(('127.0.0.1', port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.close()


def size(rng):
    return rng.choice([1, 2, 100, 1000, 4096, 65536, MAX_PAYLOAD, rng.randrange(1, MAX_PAYLOAD + 1),
                       int(2 ** rng.uniform(0, 20))])


def good(port, rng, tally):
    sha = hashlib.sha256()
    s = connect(port)
    for seq in range(rng.randrange(1, 6)):
        p = rng.randbytes(min(size(rng), MAX_PAYLOAD))
        sha.update(p)
        s.sendall(frame(p, seq))
    s.close()
    tally.add('good', sha.hexdigest())


def churn(port, rng, tally):
    for i in range(20):
        p = rng.randbytes(rng.randrange(1, 64))
        s = connect(port)
        s.sendall(frame(p, 0))
        s.close()
        tally.add('good', hashlib.sha256(p).hexdigest())


def bad(port, rng, tally):
    s = connect(port)
    s.sendall(frame(rng.randbytes(100), 0))
    kind = rng.choice(['magic', 'length', 'crc'])
    if kind == 'magic':
        s.sendall(header(10, 1, magic=0x41414141) + bytes(10))
    elif kind == 'length':
        s.sendall(header(MAX_PAYLOAD + 1, 1) + bytes(100))
    else:
        p = rng.randbytes(500)
        s.sendall(header(len(p), 1, crc=crc32c(p) ^ 1) + p)
    time.sleep(0.05)
    s.close()
    tally.add('bad')


def resetting(port, rng, tally):
    s = connect(port)
    p = rng.randbytes(rng.randrange(1000, 200000))
    s.sendall(frame(p, 0)[:rng.randrange(1, len(p))])
    time.sleep(0.02)
    reset(s)
    tally.add('reset')


def trickle(port, rng, tally, deadline):
    s = connect(port)
    f = frame(rng.randbytes(5000), 0)
    s.sendall(f[:40])
    end = min(time.time() + FRAME_TIMEOUT + 2, deadline + 5)
    at = 40
    try:
        while time.time() < end and at < len(f):
            s.sendall(f[at:at + 1])
            at += 1
            time.sleep(0.1)
    except OSError:
        pass  # ended by the receiver's timeout, as it should be
    s.close()
    tally.add('trickle')


def rss_kib(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return -1


def fds(pid):
    return len(os.listdir(f'/proc/{pid}/fd'))


def metrics(port):
    request = urllib.request.Request(f'http://127.0.0.1:{port}/metrics', headers={'Connection': 'close'})
    with urllib.request.urlopen(request, timeout=10) as r:
        body = r.read().decode()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith('#'):
            name, value = line.rsplit(' ', 1)
            out[name] = float(value)
    return out


def main():
    minutes = float(sys.argv[1])
    netmem = sys.argv[2]
    duration = minutes * 60
    warmup = max(20.0, duration / 5)
    proc = subprocess.Popen([netmem, 'recv', '--listen', '127.0.0.1:0', '--framed', '--sha256',
                             '--max-payload', '1M', '--frame-timeout', str(FRAME_TIMEOUT),
                             '--metrics', '127.0.0.1:0'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    received = collections.Counter()
    failures = collections.Counter()
    ports = {}
    ready = threading.Event()

    def read_log():
        for line in proc.stderr:
            m = re.search(r'listening on 127\.0\.0\.1:(\d+)', line)
            if m:
                ports['data'] = int(m.group(1))
            m = re.search(r'metrics on http://127\.0\.0\.1:(\d+)', line)
            if m:
                ports['metrics'] = int(m.group(1))
            if 'data' in ports and 'metrics' in ports:
                ready.set()
            m = re.search(r'sha256 ([0-9a-f]{64})', line)
            if m:
                received[m.group(1)] += 1
            elif ' failed: ' in line:
                failures[line.split(' failed: ', 1)[1].split(' (')[0][:40]] += 1

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    if not ready.wait(60):
        print('soak: the receiver did not start')
        proc.kill()
        return 1
    pid = proc.pid
    metrics(ports['metrics'])  # the metrics server's first client opens its timers
    time.sleep(0.5)
    start_fds = fds(pid)
    tally = Tally()
    start = time.time()
    deadline = start + duration
    errors = []

    def worker(seed):
        rng = random.Random(seed)
        kinds = [good] * 6 + [churn] * 2 + [bad, resetting]
        while time.time() < deadline:
            try:
                if rng.random() < 0.03:
                    trickle(ports['data'], rng, tally, deadline)
                else:
                    rng.choice(kinds)(ports['data'], rng, tally)
            except Exception as e:  # a sender must never fail: the receiver must keep up
                errors.append(f'{type(e).__name__}: {e}')
                time.sleep(0.1)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    samples = []
    warm_rss = None
    while time.time() < deadline:
        time.sleep(2)
        t = time.time() - start
        samples.append((t, rss_kib(pid), fds(pid)))
        if warm_rss is None and t >= warmup:
            warm_rss = samples[-1][1]
        if proc.poll() is not None:
            break
    for w in workers:
        w.join(60)
    # Quiet: every connection ended, nothing held.
    quiet_until = time.time() + 60
    m = {}
    while time.time() < quiet_until:
        m = metrics(ports['metrics'])
        if m.get('netmem_connections_open', 1) == 0 and m.get('netmem_tokens_outstanding', 1) == 0:
            break
        time.sleep(0.5)
    time.sleep(1)
    end_rss, end_fds = rss_kib(pid), fds(pid)
    proc.send_signal(2)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = -1
    reader.join(10)  # every line the receiver logged is read

    problems = []
    growth = end_rss - (warm_rss if warm_rss is not None else end_rss)
    if growth > 1024:
        problems.append(f'resident memory grew {growth} KiB after the warm-up (limit 1024)')
    if end_fds > start_fds:
        problems.append(f'descriptors grew from {start_fds} to {end_fds}')
    missing = tally.good - received
    if missing:
        problems.append(f'{sum(missing.values())} good senders\' digests are missing from the receiver\'s')
    if m.get('netmem_tokens_outstanding', 0) != 0 or m.get('netmem_ring_buffers_held_by_app', 0) != 0:
        problems.append(f'in flight at the end: tokens {m.get("netmem_tokens_outstanding")}, '
                        f'buffers held {m.get("netmem_ring_buffers_held_by_app")}')
    if code != 0:
        problems.append(f'netmem recv exited with {code} (it exits 1 when buffers are left in flight)')
    if errors:
        problems.append(f'{len(errors)} sender errors, e.g. {errors[0]}')

    print(f'soak: {minutes:g} min, senders {dict(tally.counts)}')
    print(f'soak: receiver ended connections failing with {dict(failures)}')
    print(f'soak: good digests {sum(tally.good.values())} sent, {sum(received.values())} reported by the receiver')
    print(f'soak: resident memory {warm_rss} KiB after warm-up ({warmup:.0f} s), {end_rss} KiB at the end '
          f'(growth {growth} KiB); descriptors {start_fds} → {end_fds}')
    print(f'soak: receiver counters frames={m.get("netmem_rx_frames")} bytes={m.get("netmem_rx_payload_bytes")} '
          f'admission_waits={m.get("netmem_rx_admission_waits")} collapses={m.get("netmem_rx_collapses")} '
          f'frame_timeouts={m.get("netmem_rx_frame_timeouts")}')
    print('soak: rss samples (s, KiB, fds): ' + ' '.join(f'{t:.0f}:{r}:{f}' for t, r, f in samples[::max(1, len(samples) // 12)]))
    for p in problems:
        print(f'soak: FAILED: {p}')
    print('soak: result: ' + ('OK' if not problems else 'FAILED'))
    return 0 if not problems else 1


if __name__ == '__main__':
    sys.exit(main())
