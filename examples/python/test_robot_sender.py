"""robot_sender.py delivers every message through real outages (end to end).

Mirrors examples/e2e_test (the Go sender's test): robot_sender.py and a real
`netmon watch --socket` run in namespace S, examples/ackserver in namespace A,
and the test takes the path between them away 10 times, in four ways:

    peer-down      A's end of the veth goes down: S loses carrier
    addr-replaced  S's address moves to another subnet, with a new default route
    route-removed  S's default route is deleted, then restored
    server-reset   ackserver resets every connection (SIGUSR1)

Topology:

    ns S (robot_sender, netmon)            ns A (ackserver, and the gateway)
    vs 10.1.0.2/24  <---- veth ---->       va 10.1.0.1/24, 10.2.0.1/24
    default via 10.1.0.1                   lo 10.9.0.1/32 (ackserver listens here)

The server's address is off-link for S, so every message needs the default
route, as on a robot. Every message must be received (ackserver's "received N
unique"), the sender must end by itself with status 0, and its counts must
agree with the server's. NETMON_E2E_SEED=<seed> replays a run's outage plan.

Needs root (skips otherwise, fails under NETMON_REQUIRE_PRIVILEGED=1).
"""

import os
import random
import re
import signal
import sys
import time
import unittest

from _nslab import HERE, NS, Proc, ackserver_bin, require_root, start_netmon, tempdir, veth, wait_until
from netmon_client import Client

PEER_DOWN, ADDR_REPLACED, ROUTE_REMOVED, SERVER_RESET = "peer-down", "addr-replaced", "route-removed", "server-reset"


def plan(rng, n):
    """n outages, the four kinds in equal shares in a shuffled order, each after
    0.5 to 2.5 s of normal operation and, but for resets, lasting 0.5 to 2 s."""
    kinds = [PEER_DOWN, ADDR_REPLACED, ROUTE_REMOVED, SERVER_RESET]
    steps = [kinds[i % len(kinds)] for i in range(n)]
    rng.shuffle(steps)
    return [(k, rng.uniform(0.5, 2.5), 0.0 if k == SERVER_RESET else rng.uniform(0.5, 2.0)) for k in steps]


class TestRobotSender(unittest.TestCase):

    def test_delivers_every_message_through_outages(self):
        require_root(self)
        count, outages = 5000, 10
        seed = int(os.environ.get("NETMON_E2E_SEED") or time.time_ns())
        sys.stderr.write("\nseed %d (replay with NETMON_E2E_SEED=%d)\n" % (seed, seed))
        steps = plan(random.Random(seed), outages)
        for kind, up, down in steps:
            sys.stderr.write("plan: after %.3fs, %s for %.3fs\n" % (up, kind, down))
        # Pace the sender so that it is still sending when the last outage
        # begins and ends soon after it (held time is not made up, but after
        # each outage the pacing catches up on at most 0.1 s).
        rate = count / (sum(up for _, up, _ in steps) + 2.0 + 0.1 * outages)

        s, a = NS(self), NS(self)
        veth(s, "vs", a, "va")
        a.ip("addr", "add", "10.1.0.1/24", "dev", "va")
        a.ip("addr", "add", "10.2.0.1/24", "dev", "va")
        a.ip("addr", "add", "10.9.0.1/32", "dev", "lo")
        s.ip("addr", "add", "10.1.0.2/24", "dev", "vs")
        s.ip("route", "add", "default", "via", "10.1.0.1")
        subnet, host = 1, 2  # S's address is 10.<subnet>.0.<host>

        sock = os.path.join(tempdir(self), "netmon.sock")
        start_netmon(self, s, sock, "--iface", "vs", "--target", "10.9.0.1")
        wait_until("netmon up", lambda: Client(sock).state()["state"] in ("up", "degraded"), 10)
        srv = Proc(self, a, "ackserver", [ackserver_bin(), "--listen", "10.9.0.1:7000"])
        srv.wait_line(lambda l: "listening" in l, 30)
        snd = Proc(self, s, "robot_sender", [
            sys.executable, os.path.join(HERE, "robot_sender.py"),
            "--addr", "10.9.0.1:7000", "--count", str(count), "--rate", "%.1f" % rate,
            "--socket", sock, "--ack-timeout", "2", "--id", "e2e"])
        sys.stderr.write("robot_sender paced at %.0f messages/s\n" % rate)

        began = time.monotonic()
        flowing = True
        for i, (kind, up, down) in enumerate(steps):
            time.sleep(up)  # the plan's schedule, not a wait for an event
            if i == len(steps) - 1:
                flowing = snd.p.poll() is None
            sys.stderr.write("outage %d/%d at %.3fs: %s for %.3fs\n"
                             % (i + 1, len(steps), time.monotonic() - began, kind, down))
            if kind == PEER_DOWN:
                a.ip("link", "set", "va", "down")
                time.sleep(down)
                a.ip("link", "set", "va", "up")
            elif kind == ADDR_REPLACED:
                s.ip("addr", "del", "10.%d.0.%d/24" % (subnet, host), "dev", "vs")
                time.sleep(down)
                subnet, host = 3 - subnet, host + 1
                s.ip("addr", "add", "10.%d.0.%d/24" % (subnet, host), "dev", "vs")
                s.ip("route", "add", "default", "via", "10.%d.0.1" % subnet)
            elif kind == ROUTE_REMOVED:
                s.ip("route", "del", "default")
                time.sleep(down)
                s.ip("route", "add", "default", "via", "10.%d.0.1" % subnet)
            else:
                srv.signal(signal.SIGUSR1)
        last = time.monotonic()

        # One deadline for the rest: the sender must finish by itself.
        try:
            rc = snd.wait(90)
        except Exception:
            self.fail("robot_sender still running 90s after the last outage; output: %r" % snd.stdout())
        ended = time.monotonic()
        srv.signal(signal.SIGTERM)
        self.assertEqual(srv.wait(30), 0, "ackserver's exit status")

        out, sout = snd.stdout(), srv.stdout()
        sys.stderr.write("robot_sender ended %.3fs after the last outage (%.1fs in all)\n"
                         % (ended - last, ended - began))
        sys.stderr.write("robot_sender: %s\nackserver: %s\n" % (out.strip(), sout.strip()))
        self.assertEqual(rc, 0, "robot_sender's exit status")
        m = re.search(r"(?m)^sent (\d+), acked (\d+), resent (\d+), held (\S+)s, dial-failures (\d+)$", out)
        self.assertIsNotNone(m, "robot_sender's output lacks the summary line: %r" % out)
        sent, acked, resent, held, dial_failures = (int(m.group(1)), int(m.group(2)), int(m.group(3)),
                                                    float(m.group(4)), int(m.group(5)))
        ms = re.search(r"(?m)^received (\d+) unique, (\d+) duplicates$", sout)
        self.assertIsNotNone(ms, "ackserver's output lacks the counts: %r" % sout)
        unique, dups = int(ms.group(1)), int(ms.group(2))

        self.assertEqual((sent, acked), (count, count), "robot_sender's sent and acked")
        self.assertEqual(unique, count, "messages received by ackserver: messages were lost")
        # Every duplicate is a copy the sender wrote again; some resent copies
        # die with their connection and never arrive.
        self.assertLessEqual(dups, resent, "ackserver saw more duplicates than the sender resent")
        # netmon held the sender through the outages ...
        self.assertGreater(held, 0, "robot_sender was never held by netmon")
        # ... so dials into an outage are rare: at most one per outage.
        self.assertLessEqual(dial_failures, outages, "failed dials: netmon should hold the sender instead")
        self.assertTrue(flowing, "the sender had finished before the last outage: the pacing is too fast")
        sys.stderr.write("e2e figures: %d messages, %d outages, resent %d, duplicates %d, held %.3fs, "
                         "dial-failures %d, %.1fs\n" % (count, outages, resent, dups, held, dial_failures,
                                                        ended - began))


class TestRobotSenderWithoutNetmon(unittest.TestCase):
    """No netmon socket: robot_sender says so and still delivers everything,
    through server resets, on loopback. No privileges needed."""

    def test_delivers_without_netmon(self):
        count = 2000
        srv = Proc(self, None, "ackserver", [ackserver_bin(), "--listen", "127.0.0.1:0"])
        line = srv.wait_line(lambda l: "listening" in l, 30)
        addr = re.search(r'"addr": "([0-9.]+:[0-9]+)"', line).group(1)
        missing = os.path.join(tempdir(self), "netmon.sock")
        snd = Proc(self, None, "robot_sender", [
            sys.executable, os.path.join(HERE, "robot_sender.py"), "--addr", addr,
            "--count", str(count), "--rate", "2000", "--socket", missing])
        snd.wait_line(lambda l: "netmon is not running: no socket at " + missing in l, 30)
        for _ in range(2):
            time.sleep(0.3)  # a schedule, not a wait for an event
            srv.signal(signal.SIGUSR1)
        self.assertEqual(snd.wait(60), 0, "robot_sender's exit status")
        srv.signal(signal.SIGTERM)
        self.assertEqual(srv.wait(30), 0, "ackserver's exit status")
        self.assertRegex(snd.stdout(), r"(?m)^sent %d, acked %d, resent \d+, held 0.000s, dial-failures 0$" % (count, count))
        self.assertRegex(srv.stdout(), r"(?m)^received %d unique, \d+ duplicates$" % count)
        self.assertTrue(any("connection failed (class connection)" in l for l in snd.err),
                        "no reset reached the sender: it finished too soon to prove anything")


class TestKeepThroughOutage(unittest.TestCase):
    """A connection is kept while netmon says the path is down, and replaced
    at the return only if messages are outstanding on it (in process, on
    loopback, netmon's events given to the Sender as its event thread would).
    No privileges needed."""

    def run_case(self, count, rate, silent_first):
        import asyncio
        from robot_sender import Sender

        async def case():
            conns, seen, ended = [], [], []

            async def serve(reader, writer):
                i = len(conns)
                conns.append(writer)
                try:
                    while True:
                        line = await reader.readuntil(b"\n")
                        seq = line.split()[0]
                        seen.append(seq)
                        if not (silent_first and i == 0):
                            writer.write(b"ACK " + seq + b"\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    pass
                finally:
                    ended.append(i)
                    writer.close()

            server = await asyncio.start_server(serve, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            snd = Sender("127.0.0.1", port, count, rate=rate, ack_timeout=30.0, sender_id="k", epoch=1)
            run = asyncio.ensure_future(snd.run())
            deadline = time.monotonic() + 20
            while len(seen) < 1 or (not silent_first and snd.n_acked < 1):
                self.assertLess(time.monotonic(), deadline, "message 1 not acknowledged")
                await asyncio.sleep(0.001)
            snd._path_state(False, "netmon says down (carrier-lost)")
            await asyncio.sleep(0.5)  # message 2 comes due at 0.2 s: it must not be written
            during = (len(conns), len(ended), len(seen))
            snd._path_state(True, "netmon says up ()")
            await asyncio.wait_for(run, 20)  # the ack timeout is 30 s
            server.close()
            await server.wait_closed()
            return during, len(conns), seen

        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(case())
        finally:
            loop.close()

    def test_nothing_outstanding_keeps_the_connection(self):
        during, conns, seen = self.run_case(2, 5.0, False)
        self.assertEqual(during, (1, 0, 1), "while down: (connections, ended, messages); want kept, nothing written")
        self.assertEqual(conns, 1, "a reconnection after an outage with nothing outstanding")
        self.assertEqual(seen, [b"k:1:1", b"k:1:2"])

    def test_outstanding_resends_on_a_fresh_connection(self):
        during, conns, seen = self.run_case(1, 0.0, True)
        self.assertEqual(during[:2], (1, 0), "while down: (connections, ended); want the connection kept")
        self.assertEqual(conns, 2, "the outstanding message was not resent on a fresh connection at the return")
        self.assertEqual(seen, [b"k:1:1", b"k:1:1"])


if __name__ == "__main__":
    unittest.main()
