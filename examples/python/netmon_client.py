"""netmon_client: talk to `netmon watch --socket` from Python (3.7 or newer).

One file, standard library only: copy it into your robot's code base.

netmon watches the kernel's links, addresses and routes, the Wi-Fi radio and
DHCP leases, and folds them into one connectivity state. This module is the
client of its local API (HTTP/1.1 and JSON over a Unix socket) and carries the
pattern for sending an important message without losing it:

    from netmon_client import Client, send_important

    client = Client()                      # $NETMON_SOCKET or /run/netmon/netmon.sock
    send_important(client, lambda: sock_send(msg), timeout=600)

`send_important` waits until traffic can flow, sends, and on a failure asks
`classify` whether resending can help: if so it tells netmon (which explains
the failure: "ENETUNREACH during a DHCP renewal of wlan0 at -81 dBm"), waits
for the path to come back and sends again; if not (a certificate the robot
does not trust, a firewall rule) it raises at once. When netmon is not
running it still sends, retrying connection errors with a capped backoff:
the robot is never worse off than without netmon.

The calls:

    client.state()                      the snapshot, as `netmon status --json` prints it
    client.wait_online(timeout=None)    True once traffic can flow, False at the timeout
    client.report(exc, dst=None)        netmon's explanation of a failed send
    client.report_success(dst=None)     a send that worked (so dead peers elsewhere hold nobody)
    client.events()                     netmon's events, one dict per line, as they happen
    is_connection_error(exc), classify(exc)
                                        what kind of failure an exception is

Every call raises `NetmonUnavailable` when the daemon is not there (no socket,
nobody listening, no permission), and `NetmonError` when it answers with an
error.
"""

import asyncio
import concurrent.futures
import errno
import http.client
import ipaddress
import json
import os
import random
import re
import socket
import ssl
import threading
import time
import urllib.parse

__all__ = [
    "Client",
    "NetmonError",
    "NetmonUnavailable",
    "classify",
    "is_connection_error",
    "send_important",
    "DEFAULT_SOCKET",
    "RETRYABLE",
]

#: Where `netmon watch` listens when run by its systemd unit
#: (RuntimeDirectory=netmon). $NETMON_SOCKET overrides it.
DEFAULT_SOCKET = "/run/netmon/netmon.sock"

# The longest single long poll of /v1/wait. Longer waits are several polls,
# so a daemon restart or a lost connection is noticed within this time.
_MAX_POLL = 30.0


class NetmonError(Exception):
    """netmon answered a request with an error (4xx or 5xx).

    `status` is the HTTP status, `message` netmon's explanation and `valid`
    what it would have accepted (may be empty).
    """

    def __init__(self, status, message, valid=""):
        text = "netmon: HTTP %d: %s" % (status, message)
        if valid:
            text += " (valid: %s)" % valid
        super().__init__(text)
        self.status = status
        self.message = message
        self.valid = valid


class NetmonUnavailable(NetmonError):
    """netmon cannot be reached: no socket, nobody listening, or no permission.

    It is a NetmonError with status 0, so that `except NetmonError` covers both.
    """

    def __init__(self, message):
        Exception.__init__(self, message)
        self.status = 0
        self.message = message
        self.valid = ""


class _UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix stream socket instead of TCP."""

    def __init__(self, path, timeout):
        # The host only fills the Host header; the socket path is what counts.
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Client:
    """A client of `netmon watch --socket PATH`.

    path: the socket; None means $NETMON_SOCKET, else /run/netmon/netmon.sock.
    timeout: seconds allowed for connecting and for each answer, on top of
    any time the server was asked to wait (wait_online's long polls).

    A Client holds no connection between calls (each call opens one; on a
    Unix socket that costs microseconds), so one Client may be shared by
    threads. close() ends the event streams that are open.
    """

    def __init__(self, path=None, timeout=5.0):
        if path is None:
            path = os.environ.get("NETMON_SOCKET") or DEFAULT_SOCKET
        self.path = path
        self.timeout = timeout
        #: The body of the last /v1/wait answer: online, trial, state, reason, ...
        self.last_wait = None
        self._lock = threading.Lock()
        self._streams = set()  # connections of open events() generators

    def __repr__(self):
        return "Client(%r)" % (self.path,)

    # -- the API ---------------------------------------------------------

    def state(self):
        """Return netmon's snapshot (a dict), as `netmon status --json` prints it.

        Keys include "state" ("unknown", "up", "degraded" or "down"),
        "reason" (e.g. "carrier-lost"), "iface", "interfaces" and "targets".
        """
        status, body = self._request("GET", "/v1/state")
        return self._json(status, body, (200,))

    def wait_online(self, timeout=None, target=None):
        """Wait until traffic can flow (the state is up or degraded).

        Returns True as soon as it can, or False when `timeout` seconds
        pass first. timeout None waits for ever; 0 asks once. `target`
        must be one of the daemon's --target values exactly as given: then
        the path to that destination is what counts.

        The wait is a long poll on the server: nothing is sent while the
        link is down, and the answer comes the moment it returns. Waits
        longer than 30 s are made of several polls.

        While netmon holds senders because sends failed (state down,
        reason send-errors, a stall beyond the gateway), it lets one held
        sender through every 500 ms to test the path: wait_online then
        returns True although the state still says down, and
        client.last_wait["trial"] is True. Send, then report the outcome:
        report_success() ends the outage at once (within about 0.5 s of the
        upstream's return), report() keeps it; send_important does both.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            poll = _MAX_POLL
            if deadline is not None:
                poll = min(poll, max(0.0, deadline - time.monotonic()))
            query = "timeout=%.3fs" % poll
            if target is not None:
                query += "&target=" + _quote(str(target))
            # The socket must wait longer than the server, which answers
            # 504 when the poll's time is up.
            status, body = self._request("GET", "/v1/wait?" + query, timeout=poll + self.timeout)
            answer = self._json(status, body, (200, 504))
            self.last_wait = answer
            if status == 200 and answer.get("online", True):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def report(self, exc, dst=None):
        """Tell netmon that a send failed with `exc`; return its explanation.

        The answer is a dict with at least "class" (see classify), "cause"
        (none, link-down, dhcp-blip, dhcp-renewing, roam, weak-signal,
        gateway-failed, recent-outage, peer, unexplained) and "explanation"
        ("ENETUNREACH during a DHCP renewal of wlan0 at -81 dBm"), plus
        "retryable", "state", "reason" and, when known, "errno", "iface",
        "signal_dbm" and "dhcp_phase". netmon counts it in its metrics and
        logs it as a sockerr line.

        dst is where the send went: "10.0.0.5", "10.0.0.5:7000", a
        (host, port) tuple or a socket address. Only IP addresses are sent;
        a host name is left out rather than resolved.
        """
        body = {"class": classify(exc), "error": _error_text(exc), "pid": os.getpid()}
        n = _os_errno(exc)
        if n is not None:
            body["errno"] = n
        if _not_found(exc):
            body["not_found"] = True
        comm = _comm()
        if comm:
            body["comm"] = comm
        d = _format_dst(dst)
        if d:
            body["dst"] = d
        data = json.dumps(body).encode("utf-8")
        status, resp = self._request("POST", "/v1/report", data=data)
        return self._json(status, resp, (200,))

    def report_success(self, dst=None):
        """Tell netmon that a send to `dst` worked; return the state after it.

        netmon counts successes per destination: while one destination
        answers, timeouts towards others (two dead servers among three) are
        those peers' own and do not hold this robot's senders, and a
        send-errors outage ends at once. dst is as in report(); without it
        the success still says that the path works. The answer is a dict
        with "state", "reason" and, when given, "dst". It costs netmon one
        atomic load unless it is counting failures.
        """
        body = {}
        d = _format_dst(dst)
        if d:
            body["dst"] = d
        status, resp = self._request("POST", "/v1/success", data=json.dumps(body).encode("utf-8"))
        return self._json(status, resp, (200,))

    def events(self):
        """Subscribe to netmon's events; return a generator of dicts.

        The vocabulary is that of `netmon watch --log-format json`: every
        event has "ts", "level", "msg" and "event"; the first is a
        "baseline" with the state at subscription, and "state" events
        carry "state", "reason" and "iface" when the state changes.

        The subscription exists when events() returns (it raises
        NetmonUnavailable at once when netmon is not there), so nothing
        that happens after the call is missed. A reader that falls more
        than 1024 events behind is cut off: the last event is then
        {"event": "dropped", "cut_off": true, "count": N} and the generator
        ends. It also ends when netmon stops, when the generator is closed,
        and when close() is called (from any thread).
        """
        conn = self._connect(timeout=self.timeout)
        try:
            conn.request("GET", "/v1/events", headers={"Accept": "application/x-ndjson"})
            resp = conn.getresponse()
            if resp.status != 200:
                self._json(resp.status, resp.read(), (200,))
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise NetmonUnavailable("netmon: GET /v1/events on %s: %s: %s"
                                    % (self.path, type(exc).__name__, exc)) from None
        except BaseException:
            conn.close()
            raise
        # Events may be minutes apart: no timeout on the stream itself.
        conn.sock.settimeout(None)
        with self._lock:
            self._streams.add(conn)
        return self._stream(conn, resp)

    def _stream(self, conn, resp):
        try:
            while True:
                try:
                    line = resp.readline()
                except (OSError, ValueError, http.client.HTTPException):
                    return  # closed under us: close(), or netmon went away
                if not line:
                    return
                line = line.strip()
                if line:
                    yield json.loads(line.decode("utf-8"))
        finally:
            with self._lock:
                self._streams.discard(conn)
            conn.close()

    def close(self):
        """End every events() stream of this client; safe from any thread."""
        with self._lock:
            streams = list(self._streams)
        for conn in streams:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read
                except OSError:
                    pass

    # -- plumbing ----------------------------------------------------------

    def _connect(self, timeout):
        conn = _UnixHTTPConnection(self.path, timeout)
        try:
            conn.connect()
        except FileNotFoundError:
            raise NetmonUnavailable(
                "netmon is not running: no socket at %s; start `netmon watch --socket %s`"
                % (self.path, self.path)) from None
        except ConnectionRefusedError:
            raise NetmonUnavailable(
                "netmon is not running: nobody listens on %s (a stale socket); start "
                "`netmon watch --socket %s`" % (self.path, self.path)) from None
        except PermissionError:
            raise NetmonUnavailable(
                "netmon: permission denied on %s: the socket's group and mode decide who may "
                "connect (netmon watch --socket-group GROUP); add this user to that group"
                % self.path) from None
        except OSError as exc:
            raise NetmonUnavailable("netmon: cannot connect to %s: %s" % (self.path, exc)) from None
        return conn

    def _request(self, method, url, data=None, timeout=None):
        conn = self._connect(self.timeout if timeout is None else timeout)
        try:
            headers = {"Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, url, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            # Connected, then lost: netmon stopped or restarted mid-request.
            raise NetmonUnavailable("netmon: %s %s on %s: %s: %s"
                                    % (method, url.split("?")[0], self.path, type(exc).__name__, exc)) from None
        finally:
            conn.close()

    @staticmethod
    def _json(status, body, ok):
        try:
            doc = json.loads(body.decode("utf-8")) if body else {}
        except ValueError:
            doc = None
        if status in ok and isinstance(doc, dict):
            return doc
        if isinstance(doc, dict) and "error" in doc:
            raise NetmonError(status, str(doc["error"]), str(doc.get("valid", "")))
        raise NetmonError(status, "unexpected answer: %r" % body[:200])


# -- classification ----------------------------------------------------------

# The classes, as netmon's Go classifier names them.
NONE, OTHER, CANCELED, CONNECTION, NETWORK = "none", "other", "canceled", "connection", "network"
DNS, TIMEOUT, TLS, CERTIFICATE, POLICY, REJECTED = "dns", "timeout", "tls", "certificate", "policy", "rejected"

#: Classes where resending after the path is back may succeed.
RETRYABLE = frozenset([CONNECTION, NETWORK, DNS, TIMEOUT, TLS])


def _errnos(*names):
    # getattr: ENONET and ENOLINK exist only on some systems.
    return frozenset(getattr(errno, n) for n in names if hasattr(errno, n))


# The errno table of netmon's Go classifier (classify/classify.go).
_NETWORK_ERRNOS = _errnos("ENETUNREACH", "ENETDOWN", "ENETRESET", "ENONET", "EHOSTUNREACH",
                          "EHOSTDOWN", "ENOLINK", "EADDRNOTAVAIL")
_CONNECTION_ERRNOS = _errnos("ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ESHUTDOWN",
                             "ENOTCONN", "ENOBUFS", "EPROTO")
_TIMEOUT_ERRNOS = _errnos("ETIMEDOUT", "EAGAIN", "EWOULDBLOCK")
_POLICY_ERRNOS = _errnos("EACCES", "EPERM")

# OpenSSL's reason codes (ssl.SSLError.reason, or "[SSL: REASON]" in its
# text) for the TLS alerts that netmon's Go classifier does not call "tls"
# (classify/alert.go): the certificate alerts, and those that say the two
# ends cannot agree whatever is resent (version, security level, cipher
# suites, extensions, ALPN, access, server name), with OpenSSL's local
# failures of the same kind.
_CERTIFICATE_REASONS = frozenset([
    "CERTIFICATE_VERIFY_FAILED", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_REVOKED", "SSLV3_ALERT_CERTIFICATE_EXPIRED", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "TLSV1_ALERT_UNKNOWN_CA", "TLSV1_BAD_CERTIFICATE_STATUS_RESPONSE", "TLSV1_BAD_CERTIFICATE_HASH_VALUE",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE",
])
_REJECTED_REASONS = frozenset([
    "SSLV3_ALERT_HANDSHAKE_FAILURE", "TLSV1_ALERT_ACCESS_DENIED", "TLSV1_ALERT_PROTOCOL_VERSION",
    "TLSV1_ALERT_INSUFFICIENT_SECURITY", "TLSV1_ALERT_INAPPROPRIATE_FALLBACK", "TLSV13_ALERT_MISSING_EXTENSION",
    "TLSV1_UNSUPPORTED_EXTENSION", "TLSV1_ALERT_NO_APPLICATION_PROTOCOL", "TLSV1_UNRECOGNIZED_NAME",
    "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE",
    "NO_SUITABLE_SIGNATURE_ALGORITHM", "INSUFFICIENT_SECURITY", "NO_APPLICATION_PROTOCOL",
])
_SSL_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")

_CANCELLED = (asyncio.CancelledError, concurrent.futures.CancelledError)
_TIMEOUTS = (socket.timeout, asyncio.TimeoutError, concurrent.futures.TimeoutError, TimeoutError)
_NOT_FOUND_EAI = frozenset(getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, n))


def classify(exc):
    """Return what kind of failure `exc` is, with netmon's class names.

    "network"      the local path is gone: ENETUNREACH, EHOSTUNREACH,
                   ENETDOWN, EHOSTDOWN, EADDRNOTAVAIL, ...
    "connection"   one connection failed: refused, reset, aborted, broken
                   pipe, not connected, an end of stream before the reply
    "timeout"      ETIMEDOUT, socket.timeout, TimeoutError, asyncio.TimeoutError
    "dns"          socket.gaierror (name not found, or no answer)
    "tls"          an ssl.SSLError that is neither of the next two: a reply
                   that is not TLS (a captive portal), a mangled record
    "certificate"  ssl.SSLCertVerificationError, or a certificate alert
                   from the peer: not fixed by resending
    "rejected"     the peer refused this client at the TLS level for good
                   (protocol version, cipher suites, ALPN, access denied)
    "policy"       EACCES/EPERM from connect or send: a prohibit route or a
                   firewall rule, not a broken link
    "canceled"     asyncio.CancelledError: the caller gave up
    "other"        anything else; "none" for None

    An exception raised `from` another (its __cause__) is classified by
    the cause when it is not a network failure itself; an end of stream
    (EOFError) counts only as the outermost exception, as netmon's Go
    classifier counts io.EOF only where a connection returned it.
    """
    outermost = True
    for _ in range(16):  # bounded: a cause chain could loop
        if exc is None:
            return NONE
        c = _classify_one(exc, outermost)
        if c != OTHER or exc.__cause__ is None:
            return c
        exc, outermost = exc.__cause__, False
    return OTHER


def _classify_one(exc, outermost):
    # Order matters: ssl.SSLError, socket.gaierror and socket.timeout are
    # OSErrors whose errno is not the kernel's, so they come first.
    if isinstance(exc, _CANCELLED):
        return CANCELED
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CERTIFICATE
    if isinstance(exc, ssl.SSLError):
        return _ssl_class(exc)
    if isinstance(exc, (socket.gaierror, socket.herror)):
        return DNS
    n = _os_errno(exc)
    if n is not None:
        if n in _NETWORK_ERRNOS:
            return NETWORK
        if n in _CONNECTION_ERRNOS:
            return CONNECTION
        if n in _TIMEOUT_ERRNOS:
            return TIMEOUT
        if n in _POLICY_ERRNOS:
            return POLICY
        return OTHER
    if isinstance(exc, _TIMEOUTS):
        return TIMEOUT
    # A ConnectionError without errno is asyncio's "connection lost" and
    # its kin. asyncio.IncompleteReadError is an EOFError: the stream
    # ended before the reply.
    if isinstance(exc, ConnectionError) or (outermost and isinstance(exc, EOFError)):
        return CONNECTION
    return OTHER


def _ssl_class(exc):
    reason = getattr(exc, "reason", None)
    if not reason:
        m = _SSL_REASON.search(str(exc))
        reason = m.group(1) if m else ""
    if reason in _CERTIFICATE_REASONS:
        return CERTIFICATE
    if reason in _REJECTED_REASONS:
        return REJECTED
    return TLS


def is_connection_error(exc):
    """Return True if resending `exc`'s message after the path is back may succeed.

    This is the seed's is_connection_err, corrected with what netmon's Go
    classifier learned: EHOSTUNREACH, EHOSTDOWN, EADDRNOTAVAIL, ENOBUFS and
    an end of stream count; certificate failures, EACCES/EPERM (policy) and
    cancellation do not, nor a TLS handshake the peer rejects for good.
    See classify.
    """
    return classify(exc) in RETRYABLE


def _os_errno(exc):
    """The kernel's errno in exc, or None (ssl's and getaddrinfo's codes are not errnos)."""
    if not isinstance(exc, OSError) or isinstance(exc, (ssl.SSLError, socket.gaierror, socket.herror)):
        return None
    n = exc.errno
    if isinstance(n, int) and 0 < n < 4096:
        return n
    return None


def _not_found(exc):
    """Whether exc says the resolver answered that the name does not exist."""
    return isinstance(exc, socket.gaierror) and exc.errno in _NOT_FOUND_EAI


def _error_text(exc):
    text = "%s: %s" % (type(exc).__name__, exc)
    return text.encode("utf-8", "replace")[:4096].decode("utf-8", "ignore")


def _comm():
    try:
        with open("/proc/self/comm", "rb") as f:
            raw = f.read().strip()[:15]
    except OSError:
        return None
    text = raw.decode("ascii", "replace")
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text) or None


def _format_dst(dst):
    """"IP", "IP:port" or "[IPv6]:port" from a string or a socket address; None for host names."""
    if dst is None:
        return None
    if isinstance(dst, (tuple, list)):
        host, port = str(dst[0]), (dst[1] if len(dst) > 1 else None)
    else:
        s = str(dst).strip()
        host, port = s, None
        if s.startswith("["):  # [IPv6]:port
            end = s.find("]")
            if end < 0:
                return None
            host, rest = s[1:end], s[end + 1:]
            port = rest[1:] if rest.startswith(":") else None
        elif s.count(":") == 1:  # IPv4:port (IPv6 has several colons)
            host, port = s.split(":")
    host = host.split("%", 1)[0]  # a zone (fe80::1%wlan0) is not part of the address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if port in (None, "", 0):
        return str(ip)
    try:
        port = int(port)
    except ValueError:
        return None
    if ip.version == 6:
        return "[%s]:%d" % (ip, port)
    return "%s:%d" % (ip, port)


def _quote(s):
    return urllib.parse.quote(s, safe="")


# -- the pattern -------------------------------------------------------------

def send_important(client, send, *, timeout=None, dst=None, target=None):
    """Call send() until it succeeds; return its result.

    1. Wait until netmon says traffic can flow (client.wait_online).
    2. Call send(). If it raises, classify the exception:
       - connection, network, dns, timeout, tls: tell netmon (report), wait
         for the path, and call send() again;
       - anything else (certificate, rejected, policy, other; cancellation
         is never caught): raise it at once, since resending cannot help.
       When send() returns, tell netmon that it worked (report_success), so
       that failures of other peers are not taken for a dead path.
    3. `timeout` (seconds, None: no limit) bounds the whole thing: when it
       passes, the last send error is raised (or TimeoutError if send was
       never called because the path stayed down).

    client may be None, and netmon may be unavailable (NetmonUnavailable):
    then send() is still called, and connection errors are retried with a
    backoff from 0.1 s doubling to 5 s (with jitter), so the robot is never
    worse off than without netmon. With netmon the same backoff applies
    only while the path looks fine (a peer that refuses), and is dropped
    after netmon held the send through an outage.

    send must be safe to call again: the receiver de-duplicates (a message
    number), since a failed send may still have arrived. dst (where send
    goes, for the report) and target (one of netmon's --target values) are
    optional.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    backoff = 0.1
    last = None

    def left():
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    while True:
        if client is not None:
            began = time.monotonic()
            try:
                online = client.wait_online(timeout=left(), target=target)
            except NetmonUnavailable:
                online = True  # no netmon: send anyway
                client = None  # and stop asking; backoff alone paces retries
            if not online:
                if last is not None:
                    raise last
                w = client.last_wait or {}
                raise TimeoutError("netmon: still offline after %ss (%s: %s)"
                                   % (timeout, w.get("state"), w.get("reason")))
            if time.monotonic() - began > 0.05:
                backoff = 0.1  # held through an outage: try at once
        try:
            result = send()
        except Exception as exc:  # CancelledError/KeyboardInterrupt are BaseException in 3.8+
            if classify(exc) not in RETRYABLE:
                raise
            last = exc
            if client is not None:
                try:
                    client.report(exc, dst=dst)
                except NetmonError:
                    pass  # the report is context; the send is what matters
            remaining = left()
            if remaining is not None and remaining <= 0:
                raise
            pause = random.uniform(backoff / 2, backoff)
            if remaining is not None:
                pause = min(pause, remaining)
            time.sleep(pause)
            backoff = min(backoff * 2, 5.0)
            continue
        if client is not None:
            try:
                client.report_success(dst)
            except (NetmonError, NetmonUnavailable):
                pass  # the success is context; the send is done
        return result
