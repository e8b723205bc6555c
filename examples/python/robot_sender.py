#!/usr/bin/env python3
"""robot_sender: send numbered messages to examples/ackserver and lose none.

The seed robot's asynchronous sender, made reliable with netmon (Python 3.7+,
standard library and netmon_client.py only). It is the pattern to copy:

  * Every message stays in memory until the server acknowledges it: the
    protocol is "SEQ PAYLOAD\\n" one way and "ACK SEQ\\n" the other, SEQ the
    token ID:EPOCH:N (this robot's --id, a random epoch chosen at start, the
    message's number from 1), and the server de-duplicates per ID and
    EPOCH (at-least-once delivery; see examples/ackserver's documentation).
    A restarted robot takes a new epoch, so none of its messages is mistaken
    for a copy of the last run's.
  * Before each connection the sender waits until netmon says traffic can
    flow (Client.wait_online, run in a thread so the event loop keeps
    going): while the link is down it makes no connection attempts at all.
  * A thread follows netmon's events. A connection is kept through an
    outage: while the state is down nothing more is written on it and the
    acknowledgement timeout does not run, so a short carrier loss that
    leaves the address and the route in place costs no reconnection (for
    TLS, no handshake). When the path returns with messages still
    unacknowledged on it, they are written again at once on a fresh
    connection (the old one would resend them only when TCP's backed-off
    retransmission timer fires); with nothing outstanding it goes on. A
    rebind (the local address went away, so the connection's writes would
    vanish into a stall) ends the connection at once.
  * A connection also ends when it fails, or when no acknowledgement comes
    for --ack-timeout while messages are outstanding and the path is up (a
    path that silently drops packets). Every unacknowledged message is then
    written again, oldest first, on the next connection.
  * Acknowledgements are reported to netmon as successes (at most one a
    second, Client.report_success with the server's address), so that other
    peers' failures are not taken for a dead path.
  * A failure is classified (netmon_client.classify) and reported to netmon,
    which explains it ("ECONNRESET from peer ..."). Retryable classes
    (connection, network, dns, timeout, tls) lead to a reconnect, with a
    backoff when a connection made no progress; the others (a certificate,
    a firewall) end the run.
  * Without netmon (no socket) it still works: it connects at once and
    relies on the acknowledgement timeout and the backoff.

Usage:

    robot_sender.py --addr HOST:PORT --count N [--rate R] [--socket PATH] [--id NAME]

It exits 0 only when every message has been acknowledged, after printing

    sent N, acked N, resent K, held T, dial-failures F

like the Go sender (examples/sender): K counts copies written again after a
reconnect, T the time spent waiting for netmon to say the path is back (before
a connection, or with one kept through an outage), F
the failed connection attempts. It exits 1 when it stops before (SIGINT,
SIGTERM, an error no resend can fix), after printing the same line, and 2
on a usage error.
"""

import argparse
import asyncio
import os
import random
import re
import signal
import socket
import sys
import threading
import time

from netmon_client import RETRYABLE, Client, NetmonError, NetmonUnavailable, classify


ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def safe_id(name):
    """name with every character outside the token's set replaced by '-', at most 64."""
    return (re.sub(r"[^A-Za-z0-9._-]", "-", name)[:64]) or "robot"


class PathLost(Exception):
    """netmon said the path went away: drop the connection and wait (not a failure)."""


class AckStall(TimeoutError):
    """No acknowledgement for --ack-timeout while messages were outstanding."""


class ProtocolError(Exception):
    """The server spoke something other than "ACK SEQ": no resend fixes that."""


def log(msg, *args):
    """One line on standard error, with the time."""
    t = time.strftime("%H:%M:%S", time.gmtime())
    sys.stderr.write("%s.%03d robot_sender: %s\n" % (t, int(time.time() * 1000) % 1000, msg % args))
    sys.stderr.flush()


class Sender:
    """Delivers messages 1..count at least once; the state lives on the event loop."""

    def __init__(self, host, port, count, rate=0.0, window=256, payload=b"",
                 ack_timeout=5.0, dial_timeout=5.0, client=None, sender_id="robot", epoch=1):
        self.host, self.port, self.count = host, port, count
        self.prefix = ("%s:%d:" % (sender_id, epoch)).encode("ascii")  # SEQ is prefix + N
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.window, self.payload = window, payload
        self.ack_timeout, self.dial_timeout = ack_timeout, dial_timeout
        self.client = client

        self.acked = bytearray(count + 1)    # acked[seq]
        self.written = bytearray(count + 1)  # written[seq]: on any connection
        self.n_acked = self.n_written = self.resent = self.dial_failures = 0
        self.held = 0.0                      # seconds spent in wait_online
        self.next = 0.0                      # earliest time of the next write under --rate

        # Per connection:
        self.cursor = 1        # next seq to consider writing
        self.inflight = 0      # written on this connection, not yet acknowledged
        self.conn_acks = 0     # new acknowledgements on this connection
        self.last_ack = 0.0    # time of the last one

        # Set from netmon's event thread (through the loop):
        self.path_epoch = 0    # bumped on a rebind: the connection's address went away
        self.path_reason = ""
        self.path_up = True    # False while netmon says the state is down
        self.returns = 0       # bumped when the path comes back after being down
        self.last_success = 0.0  # when the last success was reported to netmon
        self.wake = None       # asyncio.Event: an ack, or a path change

        self._netmon_warned = False

    def summary(self):
        return "sent %d, acked %d, resent %d, held %.3fs, dial-failures %d" % (
            self.n_written, self.n_acked, self.resent, self.held, self.dial_failures)

    # -- the loop ---------------------------------------------------------

    async def run(self):
        """Deliver every message; raise on an error no resend can fix."""
        loop = asyncio.get_event_loop()
        self.wake = asyncio.Event()
        stop = threading.Event()
        watcher = None
        if self.client is not None:
            watcher = threading.Thread(target=self._watch, args=(loop, stop),
                                       name="netmon-events", daemon=True)
            watcher.start()
        try:
            failures = 0  # connections in a row that made no progress
            while self.n_acked < self.count:
                await self.wait_path()
                epoch = self.path_epoch
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port), self.dial_timeout)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.dial_failures += 1
                    progress, err = False, exc
                else:
                    progress, err = await self.session(reader, writer, epoch)
                if err is None:
                    continue
                if isinstance(err, PathLost):
                    log("connection dropped: %s; %d written and unacknowledged", err, self.inflight)
                    continue
                cls = classify(err)
                why = await self.report(err)
                if cls not in RETRYABLE:
                    raise err
                log("connection failed (class %s%s): %s%s; %d written and unacknowledged",
                    cls, why and "; netmon: " + why, type(err).__name__, _text(err), self.inflight)
                if progress:
                    failures = 0
                    continue
                # A server that accepts and fails at once must not turn the
                # sender into a busy loop: back off (cut short by a path change).
                failures += 1
                await self.pause(failures)
        finally:
            stop.set()
            if self.client is not None:
                self.client.close()  # ends the event stream the watcher reads
            if watcher is not None:
                watcher.join(timeout=5)

    async def wait_path(self):
        """Hold until netmon says traffic can flow; return at once without netmon."""
        if self.client is None:
            return
        loop = asyncio.get_event_loop()
        began = time.monotonic()
        said = False
        answered = False
        while True:
            try:
                # Bounded polls, so that a signal is never kept waiting long.
                ok = await loop.run_in_executor(None, self.client.wait_online, 5.0)
            except NetmonUnavailable as exc:
                if not self._netmon_warned:
                    log("%s; sending without it", exc)
                    self._netmon_warned = True
                break
            except NetmonError as exc:
                log("netmon: %s; sending anyway", exc)
                break
            self._netmon_warned = False
            answered = True
            if ok:
                break
            if not said:
                w = self.client.last_wait or {}
                log("held: netmon says %s (%s)", w.get("state"), w.get("reason"))
                said = True
        waited = time.monotonic() - began
        if answered:
            self.held += waited
        if said:
            log("path back after %.3fs", waited)

    async def session(self, reader, writer, epoch):
        """Write unacknowledged messages on one connection until all are acknowledged
        (None) or the connection ends; return (progress, error)."""
        self.cursor, self.inflight, self.conn_acks = 1, 0, 0
        self.last_ack = time.monotonic()
        returns = self.returns  # returns of the path this connection has seen
        acks = asyncio.ensure_future(self.read_acks(reader))
        acks.add_done_callback(lambda _: self.wake.set())  # a dead connection wakes a held session
        err = None
        try:
            while True:
                self.wake.clear()  # before the checks: a wake-up after them is kept
                if self.n_acked == self.count:
                    return self.conn_acks > 0, None
                if self.path_epoch != epoch:
                    err = PathLost(self.path_reason)
                    return self.conn_acks > 0, err
                if acks.done():
                    err = acks.exception() or ConnectionResetError("the server closed the connection")
                    return self.conn_acks > 0, err
                now = time.monotonic()
                if self.returns != returns:
                    # The path came back: resend what is outstanding on a
                    # fresh connection, or go on with this one.
                    returns = self.returns
                    self.last_ack = now  # the ack clock stopped while down
                    if self.inflight:
                        err = PathLost("the path returned with %d unacknowledged; resending on a fresh connection" % self.inflight)
                        return self.conn_acks > 0, err
                if not self.path_up:
                    # Kept through the outage: write nothing, no ack timeout;
                    # the time counts as held, as a wait in wait_path does.
                    await self.wake.wait()
                    self.held += time.monotonic() - now
                    continue
                seq = self.next_to_write()
                if seq and now >= self.next:
                    writer.write(b"%s%d %s\n" % (self.prefix, seq, self.payload))
                    self.mark_written(seq, now)
                    if self.interval:
                        # A token bucket with a small burst: timer lateness is
                        # made up, time held while the path was down is not.
                        self.next = max(self.next, now - 0.1) + self.interval
                    if writer.transport.get_write_buffer_size() > 0:
                        try:
                            await asyncio.wait_for(writer.drain(), self.ack_timeout)
                        except asyncio.TimeoutError:
                            err = AckStall("sender: writes blocked for %ss" % self.ack_timeout)
                            return self.conn_acks > 0, err
                    continue
                if self.inflight and now - self.last_ack >= self.ack_timeout:
                    err = AckStall("sender: no acknowledgement within %ss" % self.ack_timeout)
                    return self.conn_acks > 0, err
                wait = self.ack_timeout - (now - self.last_ack) if self.inflight else self.ack_timeout
                if seq:
                    wait = min(wait, self.next - now)
                try:
                    await asyncio.wait_for(self.wake.wait(), max(0.0, wait))
                except asyncio.TimeoutError:
                    pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a write or drain on a dead connection
            err = exc
            return self.conn_acks > 0, err
        finally:
            acks.cancel()
            if err is None:
                writer.close()
            else:
                # Unacknowledged data may sit in the buffer of a dead path:
                # abort, or closing would wait for it.
                writer.transport.abort()
            try:
                await acks
            except BaseException:
                pass

    async def read_acks(self, reader):
        """Read "ACK SEQ" lines until the connection ends (raises)."""
        while True:
            line = await reader.readuntil(b"\n")  # IncompleteReadError at EOF
            if line.startswith(b"ERR "):
                raise ProtocolError("sender: the server refused a line: %s" % line[4:].strip().decode("utf-8", "replace"))
            parts = line.split()
            n = parts[1][len(self.prefix):] if len(parts) == 2 and parts[1].startswith(self.prefix) else b""
            if parts[:1] != [b"ACK"] or not n.isdigit():
                raise ProtocolError("sender: malformed acknowledgement %r" % line[:80])
            seq = int(n)
            if not 1 <= seq <= self.count:
                raise ProtocolError("sender: acknowledgement of unknown message %d" % seq)
            if not self.acked[seq]:
                self.acked[seq] = 1
                self.n_acked += 1
                if seq < self.cursor:
                    self.inflight -= 1
                self.conn_acks += 1
                self.last_ack = time.monotonic()
                self.wake.set()
                if self.client is not None and self.last_ack - self.last_success >= 1.0:
                    self.last_success = self.last_ack
                    asyncio.get_event_loop().run_in_executor(None, self._report_success)

    def next_to_write(self):
        """The next message to write on this connection, or 0 (window full, or all written)."""
        while self.cursor <= self.count and self.acked[self.cursor]:
            self.cursor += 1
        if self.cursor > self.count or self.inflight >= self.window:
            return 0
        return self.cursor

    def mark_written(self, seq, now):
        if self.written[seq]:
            self.resent += 1
        else:
            self.written[seq] = 1
            self.n_written += 1
        self.cursor = seq + 1
        self.inflight += 1
        if self.inflight == 1:
            self.last_ack = now  # the stall clock starts with the first outstanding message

    async def pause(self, n):
        """Full-jitter backoff before the n-th reconnect without progress (0.1 s doubling
        to 5 s), cut short when netmon says the path changed."""
        ceiling = min(0.1 * 2 ** min(n - 1, 6), 5.0)
        self.wake.clear()
        epoch = self.path_epoch
        deadline = time.monotonic() + random.uniform(0, ceiling)
        while self.path_epoch == epoch:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self.wake.wait(), left)
            except asyncio.TimeoutError:
                return
            self.wake.clear()

    async def report(self, err):
        """Tell netmon about a failure; return its explanation ("" without netmon)."""
        if self.client is None:
            return ""
        loop = asyncio.get_event_loop()
        try:
            r = await loop.run_in_executor(None, self.client.report, err, (self.host, self.port))
        except NetmonError:
            return ""
        return "%s, %s" % (r.get("cause"), r.get("explanation"))

    def _report_success(self):
        """Tell netmon that the server acknowledged (in a thread; errors ignored)."""
        try:
            self.client.report_success((self.host, self.port))
        except NetmonError:
            pass

    # -- netmon's events (a thread) -----------------------------------------

    def _watch(self, loop, stop):
        """Follow netmon's events; tell the loop when the path goes away."""
        while not stop.is_set():
            try:
                events = self.client.events()
                if stop.is_set():
                    # run() ended while we subscribed, and its close() may
                    # have come before this stream existed: end it, so that
                    # the loop below ends at once (and closes it).
                    self.client.close()
                for ev in events:
                    if stop.is_set():
                        return
                    kind = ev.get("event")
                    if kind in ("baseline", "state"):
                        up = ev.get("state") not in ("down", "unknown")
                        why = "netmon says %s (%s)" % (ev.get("state"), ev.get("reason"))
                        call = (self._path_state, up, why)
                    elif kind == "rebind":
                        why = "netmon says rebind (%s %s)" % (ev.get("reason"), ev.get("addr", ""))
                        call = (self._path_lost, why)
                    else:
                        continue
                    try:
                        loop.call_soon_threadsafe(*call)
                    except RuntimeError:
                        return  # the loop is gone
            except NetmonError:
                pass  # not running (yet): look again in a second
            stop.wait(1.0)

    def _path_lost(self, why):
        self.path_epoch += 1
        self.path_reason = why
        self.wake.set()

    def _path_state(self, up, why):
        if up and not self.path_up:
            self.returns += 1
        if up != self.path_up:
            log("%s; %s", why, "resuming" if up else "keeping the connection, writing nothing")
        self.path_up = up
        self.wake.set()


def _text(err):
    s = str(err)
    return ": " + s if s else ""


def parse_addr(s):
    """HOST:PORT or [IPv6]:PORT."""
    if s.startswith("["):
        host, _, port = s[1:].partition("]:")
    else:
        host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("want HOST:PORT, got %r" % s)
    return host, int(port)


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Send numbered messages to examples/ackserver through netmon; exit 0 "
                    "once every one is acknowledged.")
    p.add_argument("--addr", type=parse_addr, default="127.0.0.1:7000", help="ackserver HOST:PORT")
    p.add_argument("--count", type=int, default=100, help="messages to send, numbered from 1")
    p.add_argument("--rate", type=float, default=0.0, help="at most this many messages per second (0: no limit)")
    p.add_argument("--socket", default=None,
                   help="netmon's socket (default: $NETMON_SOCKET or /run/netmon/netmon.sock)")
    p.add_argument("--id", default="", help="this robot's name in every SEQ: 1-64 of A-Z a-z 0-9 . _ - (default: the host name)")
    p.add_argument("--window", type=int, default=256, help="most unacknowledged messages on one connection")
    p.add_argument("--ack-timeout", type=float, default=5.0,
                   help="redial when no acknowledgement comes for this many seconds")
    p.add_argument("--dial-timeout", type=float, default=5.0, help="give up one connection attempt after this long")
    a = p.parse_args(argv)
    if a.count <= 0 or a.rate < 0 or a.window <= 0 or a.ack_timeout <= 0 or a.dial_timeout <= 0:
        p.error("--count, --window, --ack-timeout and --dial-timeout must be > 0, --rate >= 0")
    sender_id = a.id or safe_id(socket.gethostname())
    if not ID_RE.match(sender_id):
        p.error("--id %r: want 1-64 of A-Z a-z 0-9 . _ -" % sender_id)
    # A random epoch, not the clock: a robot without a real-time clock can
    # boot twice at the same time.
    epoch = random.SystemRandom().randrange(1, 1 << 64)
    log("sending %s:%d:1 to %s:%d:%d", sender_id, epoch, sender_id, epoch, a.count)
    s = Sender(a.addr[0], a.addr[1], a.count, rate=a.rate, window=a.window, payload=b"telemetry",
               ack_timeout=a.ack_timeout, dial_timeout=a.dial_timeout, client=Client(a.socket),
               sender_id=sender_id, epoch=epoch)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    task = loop.create_task(s.run())
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    code = 0
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        log("interrupted before every message was acknowledged")
        code = 1
    except Exception as exc:
        log("stopped: %s: %s (class %s: resending cannot help)", type(exc).__name__, exc, classify(exc))
        code = 1
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    print(s.summary(), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
