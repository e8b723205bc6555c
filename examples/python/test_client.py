"""netmon_client against a real `netmon watch --socket` in network namespaces.

Topology of every test (a fresh one each):

    ns S (netmon)                         ns A (the peer)
    vs 10.1.0.2/24   <---- veth ---->     va 10.1.0.1/24

netmon watches vs with --target 10.1.0.1 (on-link: no default route needed),
so taking va down (the peer's end) makes S lose carrier: the state goes down,
and comes back up when va does.

Needs root (skips otherwise, fails under NETMON_REQUIRE_PRIVILEGED=1).
"""

import errno
import os
import queue
import socket
import statistics
import sys
import threading
import time
import unittest

from _nslab import NS, require_root, start_netmon, tempdir, veth, wait_until
from netmon_client import Client, NetmonError, NetmonUnavailable, send_important

ONLINE = ("up", "degraded")


class Lab:
    """Two namespaces, a veth between them and netmon watching S's end."""

    def __init__(self, test):
        require_root(test)
        self.s, self.a = NS(test), NS(test)
        veth(self.s, "vs", self.a, "va")
        self.a.ip("addr", "add", "10.1.0.1/24", "dev", "va")
        self.s.ip("addr", "add", "10.1.0.2/24", "dev", "vs")
        self.sock = os.path.join(tempdir(test), "netmon.sock")
        self.netmon = start_netmon(test, self.s, self.sock, "--iface", "vs", "--target", "10.1.0.1")
        self.client = Client(self.sock)
        self.wait_state(ONLINE)

    def wait_state(self, states, timeout=10):
        return wait_until("netmon state in %s" % (states,),
                          lambda: self.client.state()["state"] in states and self.client.state(), timeout)

    def peer_down(self):
        self.a.ip("link", "set", "va", "down")

    def peer_up(self):
        self.a.ip("link", "set", "va", "up")


class TestClient(unittest.TestCase):

    def setUp(self):
        self.lab = Lab(self)
        self.client = self.lab.client

    def test_state(self):
        st = self.client.state()
        for key in ("state", "reason", "iface", "interfaces", "targets", "wifi_watcher"):
            self.assertIn(key, st)
        self.assertIn(st["state"], ONLINE)
        self.assertEqual(st["iface"], "vs")
        self.assertEqual([i["name"] for i in st["interfaces"]], ["vs"])

    def test_wait_online_true_when_up(self):
        self.assertTrue(self.client.wait_online(timeout=0))
        self.assertTrue(self.client.wait_online(timeout=5))
        self.assertTrue(self.client.wait_online(timeout=5, target="10.1.0.1"))
        self.assertIs(self.client.last_wait["online"], True)

    def test_wait_online_unknown_target(self):
        with self.assertRaises(NetmonError) as cm:
            self.client.wait_online(timeout=1, target="192.0.2.99")
        self.assertEqual(cm.exception.status, 400)

    def test_wait_online_false_at_timeout(self):
        self.lab.peer_down()
        self.lab.wait_state(("down",))
        began = time.monotonic()
        self.assertFalse(self.client.wait_online(timeout=0.5))
        took = time.monotonic() - began
        self.assertGreaterEqual(took, 0.5)
        w = self.client.last_wait
        self.assertIs(w["online"], False)
        self.assertEqual(w["state"], "down")
        self.assertTrue(w["reason"])
        self.assertIn("snapshot", w)
        self.assertFalse(self.client.wait_online(timeout=0))

    def test_wait_released_when_link_returns(self):
        self.lab.peer_down()
        self.lab.wait_state(("down",))
        result = queue.Queue()

        def waiter():
            try:
                result.put((self.client.wait_online(timeout=30), time.monotonic()))
            except Exception as exc:  # reported by the assertion below
                result.put((exc, time.monotonic()))

        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        # The waiter must be held while the link is down (a negative check:
        # it has not answered after a while).
        time.sleep(0.3)
        self.assertTrue(result.empty(), "wait_online answered while the link was down: %r" % (result.queue,))
        self.lab.peer_up()
        returned = time.monotonic()
        ok, at = result.get(timeout=15)
        self.assertIs(ok, True)
        t.join(5)
        sys.stderr.write("\nwait_online released %.1f ms after `ip link set va up` returned\n"
                         % ((at - returned) * 1000))

    def test_wait_online_forever_is_several_polls(self):
        """timeout=None waits across long polls (shortened here from 30 s to 0.2 s)."""
        import netmon_client
        self.addCleanup(setattr, netmon_client, "_MAX_POLL", netmon_client._MAX_POLL)
        netmon_client._MAX_POLL = 0.2
        self.lab.peer_down()
        self.lab.wait_state(("down",))
        result = queue.Queue()
        t = threading.Thread(target=lambda: result.put(self.client.wait_online()), daemon=True)
        t.start()
        time.sleep(1.0)  # five polls' worth
        self.assertTrue(result.empty(), "wait_online() answered while the link was down")
        self.assertEqual(self.client.last_wait["state"], "down")  # at least one poll ended in a 504
        self.lab.peer_up()
        self.assertIs(result.get(timeout=15), True)
        t.join(5)

    def test_report_enetunreach_while_down(self):
        self.lab.peer_down()
        self.lab.wait_state(("down",))
        exc = OSError(errno.ENETUNREACH, os.strerror(errno.ENETUNREACH))
        r = self.client.report(exc, dst=("10.1.0.1", 7000))
        self.assertEqual(r["class"], "network")
        self.assertEqual(r["errno"], "ENETUNREACH")
        self.assertEqual(r["cause"], "link-down")
        self.assertEqual(r["iface"], "vs")
        self.assertEqual(r["state"], "down")
        self.assertTrue(r["connection_error"])
        self.assertTrue(r["retryable"])
        self.assertTrue(r["explanation"])

    def test_report_round_trip(self):
        """A figure, not an assertion: the median time of a report from Python."""
        exc = ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
        times = []
        for _ in range(200):
            began = time.perf_counter()
            r = self.client.report(exc, dst="10.1.0.1:7000")
            times.append(time.perf_counter() - began)
        self.assertEqual(r["class"], "connection")
        times.sort()
        sys.stderr.write("\nreport round trip from Python: median %.3f ms, p90 %.3f ms, max %.3f ms (200 calls)\n"
                         % (statistics.median(times) * 1000, times[int(len(times) * 0.9)] * 1000, times[-1] * 1000))

    def test_report_success_keeps_live_path_up(self):
        """Timeouts to two dead servers, reported beside the live one's successes, hold nobody;
        once the live one fails too the path is down (send-errors), and a success reopens it."""
        timeout = TimeoutError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
        dead1, dead2, live = ("10.1.0.5", 7000), ("10.1.0.6", 7000), ("10.1.0.7", 7000)
        self.client.report(timeout, dst=dead1)
        r = self.client.report_success(live)
        self.assertEqual(r["dst"], "10.1.0.7")
        self.assertEqual(r["state"], "up")
        for i in range(12):
            self.client.report(timeout, dst=(dead1, dead2)[i % 2])
            if i == 6:
                self.client.report_success(live)
        st = self.client.state()
        self.assertEqual((st["state"], st["reason"]), ("up", ""),
                         "two dead servers beside a live one changed the state")
        self.client.report(timeout, dst=live)  # now nothing answers
        st = self.lab.wait_state(("down",))
        self.assertEqual(st["reason"], "send-errors")
        r = self.client.report_success(live)
        self.assertEqual(r["state"], "up")
        self.assertEqual(self.client.report_success()["state"], "up")  # no destination: still a success

    def test_send_important_is_a_trial_during_send_errors(self):
        """While a send-errors verdict holds (timeouts to two servers, reported), a held
        wait_online is let through as a trial: True, last_wait["trial"], the state still
        down; send_important then sends, and the success it reports brings the state up."""
        timeout = TimeoutError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
        for i in range(6):
            self.client.report(timeout, dst=(("10.1.0.5", 7000), ("10.1.0.6", 7000))[i % 2])
        st = self.lab.wait_state(("down",))
        self.assertEqual(st["reason"], "send-errors")
        seen = []

        def send():
            seen.append(self.client.state())
            return "sent"

        began = time.monotonic()
        self.assertEqual(send_important(self.client, send, timeout=30), "sent")
        took = time.monotonic() - began
        w = self.client.last_wait
        self.assertIs(w.get("trial"), True, "wait_online's answer was no trial: %r" % (w,))
        self.assertIs(w["online"], True)
        self.assertEqual((w["state"], w["reason"]), ("down", "send-errors"))
        self.assertEqual(len(seen), 1)
        self.assertEqual((seen[0]["state"], seen[0]["reason"]), ("down", "send-errors"),
                         "send() was not called as a trial, while the state said down")
        self.assertEqual(self.client.state()["state"], "up", "the trial's reported success did not end the outage")
        sys.stderr.write("\nsend_important let through as a trial %.0f ms after it began waiting\n" % (took * 1000))

    def test_events_in_order_across_down_up(self):
        events = self.client.events()  # subscribed on return
        got = queue.Queue()

        def reader():
            for ev in events:
                got.put(ev)
            got.put(None)  # the generator ended

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        seen = []

        def next_matching(pred, what):
            deadline = time.monotonic() + 10
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.fail("no %s event within 10s; saw %r" % (what, [e.get("event") for e in seen]))
                try:
                    ev = got.get(timeout=left)
                except queue.Empty:
                    continue
                self.assertIsNotNone(ev, "the event stream ended early")
                for key in ("ts", "level", "msg", "event"):
                    self.assertIn(key, ev)
                seen.append(ev)
                if pred(ev):
                    return ev

        first = next_matching(lambda e: True, "first")
        self.assertEqual(first["event"], "baseline")
        self.assertIn(first["state"], ONLINE)
        self.lab.peer_down()
        down = next_matching(lambda e: e["event"] == "state", "state")
        self.assertEqual(down["state"], "down")
        self.assertTrue(down["reason"])
        self.lab.peer_up()
        up = next_matching(lambda e: e["event"] == "state", "state")
        self.assertIn(up["state"], ONLINE)
        self.assertLess(down["ts"], up["ts"])
        # close() ends the stream from another thread.
        self.client.close()
        t.join(5)
        self.assertFalse(t.is_alive(), "events() did not end after close()")

    def test_events_slow_reader_cut_off(self):
        """A subscriber that reads nothing is cut off, and the generator yields
        the final "dropped" line (cut_off) before it ends."""
        events = self.client.events()
        exc = ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
        self.lab.netmon.quiet = True  # thousands of sockerr lines
        try:
            # Each report is an event; more than the socket's buffer and
            # netmon's 1024-line queue hold.
            for _ in range(4000):
                self.client.report(exc)
        finally:
            self.lab.netmon.quiet = False
        got = []
        t = threading.Thread(target=lambda: got.extend(events), daemon=True)
        t.start()
        t.join(15)
        if t.is_alive():
            self.client.close()
            self.fail("the cut-off stream did not end within 15s")
        self.assertEqual(got[0]["event"], "baseline")
        last = got[-1]
        self.assertEqual(last["event"], "dropped", "the last line: %r" % (last,))
        self.assertIs(last["cut_off"], True)
        self.assertGreater(last["count"], 0)
        sys.stderr.write("\nslow reader: %d lines read, then cut off having missed %d\n" % (len(got) - 1, last["count"]))

    def test_events_end_when_netmon_stops(self):
        events = self.client.events()
        first = next(events)
        self.assertEqual(first["event"], "baseline")
        rest = []
        t = threading.Thread(target=lambda: rest.extend(events), daemon=True)
        t.start()
        self.lab.netmon.signal(15)  # SIGTERM
        t.join(10)
        if t.is_alive():
            self.client.close()
            self.fail("events() did not end within 10s of netmon's SIGTERM")
        self.assertEqual(self.lab.netmon.wait(10), 0)
        self.assertTrue(all("event" in e for e in rest))
        # And then the daemon is unavailable.
        with self.assertRaises(NetmonUnavailable):
            self.client.state()

    def test_send_important_held_while_down(self):
        """With netmon, send() is not called while the link is down."""
        self.lab.peer_down()
        self.lab.wait_state(("down",))
        calls = []

        def send():
            calls.append(self.client.state()["state"])
            return "sent"

        out = queue.Queue()
        t = threading.Thread(target=lambda: out.put(send_important(self.client, send, timeout=30)), daemon=True)
        t.start()
        time.sleep(0.3)
        self.assertEqual(calls, [], "send() was called while the link was down")
        self.lab.peer_up()
        self.assertEqual(out.get(timeout=15), "sent")
        self.assertEqual(len(calls), 1)
        self.assertIn(calls[0], ONLINE)

    def test_send_important_reports_and_resends(self):
        """A connection error is reported to netmon (a sockerr event) and send() is called again."""
        events = self.client.events()
        srv = bound_not_listening(self)
        calls = []

        def send():
            calls.append(1)
            try:
                c = socket.create_connection(srv.getsockname(), timeout=2)  # ECONNREFUSED until listen()
            except ConnectionRefusedError:
                srv.listen(1)
                raise
            c.close()
            return len(calls)

        self.assertEqual(send_important(self.client, send, timeout=10, dst=srv.getsockname()), 2)
        deadline = time.monotonic() + 10
        for ev in events:
            if ev.get("event") == "sockerr":
                break
            self.assertLess(time.monotonic(), deadline, "no sockerr event for the report")
        self.client.close()


def bound_not_listening(test):
    """A loopback TCP socket bound but not listening: connects get a real ECONNREFUSED
    until listen() is called on it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    test.addCleanup(s.close)
    s.bind(("127.0.0.1", 0))
    return s


class TestWithoutNetmon(unittest.TestCase):
    """No daemon: clear errors, and send_important still sends. No privileges needed."""

    def setUp(self):
        self.path = os.path.join(tempdir(self), "netmon.sock")

    def test_missing_socket(self):
        c = Client(self.path)
        for call in (c.state, lambda: c.wait_online(timeout=1), c.events,
                     lambda: c.report(ConnectionResetError(errno.ECONNRESET, "reset"))):
            with self.assertRaises(NetmonUnavailable) as cm:
                call()
            msg = str(cm.exception)
            self.assertIn("netmon is not running: no socket at " + self.path, msg)
            self.assertIn("netmon watch --socket " + self.path, msg)

    def test_stale_socket(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.path)
        s.close()  # the file stays, nobody listens
        with self.assertRaises(NetmonUnavailable) as cm:
            Client(self.path).state()
        self.assertIn("nobody listens", str(cm.exception))

    def test_default_path(self):
        old = os.environ.pop("NETMON_SOCKET", None)
        try:
            self.assertEqual(Client().path, "/run/netmon/netmon.sock")
            os.environ["NETMON_SOCKET"] = self.path
            self.assertEqual(Client().path, self.path)
        finally:
            os.environ.pop("NETMON_SOCKET", None)
            if old is not None:
                os.environ["NETMON_SOCKET"] = old

    def test_send_important_still_sends(self):
        for client in (None, Client(self.path)):
            with self.subTest(client=client):
                srv = bound_not_listening(self)
                calls = []

                def send():
                    calls.append(1)
                    try:
                        c = socket.create_connection(srv.getsockname(), timeout=2)
                    except ConnectionRefusedError:
                        if len(calls) == 2:
                            srv.listen(1)  # the server comes up after two refusals
                        raise
                    c.close()
                    return "sent"

                self.assertEqual(send_important(client, send, timeout=10), "sent")
                self.assertEqual(len(calls), 3)

    def test_send_important_raises_non_retryable_at_once(self):
        calls = []

        def send():
            calls.append(1)
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))  # a prohibit route: policy

        with self.assertRaises(PermissionError):
            send_important(Client(self.path), send, timeout=10)
        self.assertEqual(len(calls), 1)

    def test_send_important_timeout_raises_last_error(self):
        srv = bound_not_listening(self)
        calls = []

        def send():
            calls.append(1)
            socket.create_connection(srv.getsockname(), timeout=2).close()

        began = time.monotonic()
        with self.assertRaises(ConnectionRefusedError):
            send_important(None, send, timeout=0.5)
        self.assertGreaterEqual(time.monotonic() - began, 0.5)
        self.assertGreater(len(calls), 1)


if __name__ == "__main__":
    unittest.main()
