"""_nslab: network namespaces, veth pairs and processes for the Python tests.

A small Python counterpart of internal/netnstest: named namespaces made with
`ip netns add` (unique names with the test process's PID and a random
suffix), veth pairs between them, and programs run inside them with
`ip netns exec`. Everything a test makes is removed by the cleanups it
registers, also when the test fails; namespaces left by a test process that
was killed are swept by the next run.

Privileges: creating namespaces needs root. require_root skips the test with
the reason, or fails it when NETMON_REQUIRE_PRIVILEGED=1 (as CI sets), so a
test CI expects to run cannot silently become a skip.
"""

import ctypes
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))  # examples/python -> the module root

ENV_REQUIRE_PRIVILEGED = "NETMON_REQUIRE_PRIVILEGED"
_PREFIX = "nmpy-"  # namespace names: nmpy-<pid>-<n>-<hex>


def skip_or_fail(test, reason):
    """Skip test with reason, or fail it under NETMON_REQUIRE_PRIVILEGED=1."""
    if os.environ.get(ENV_REQUIRE_PRIVILEGED) == "1":
        test.fail("%s=1 but this test would skip: %s" % (ENV_REQUIRE_PRIVILEGED, reason))
    raise unittest.SkipTest(reason)


def require_root(test):
    """Skip (or fail, see skip_or_fail) unless running as root with iproute2."""
    if os.geteuid() != 0:
        skip_or_fail(test, "needs root to create network namespaces (run the tests as root)")
    if shutil.which("ip") is None:
        skip_or_fail(test, "ip not installed (apt-get install iproute2)")


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def run(*args, check=True):
    """Run a command, logged as `$ ...`; return its standard output."""
    log("$ " + " ".join(args))
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()))
    return p.stdout


def wait_until(what, fn, timeout):
    """Poll fn until it returns a true value (returned); fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as exc:  # e.g. the daemon not listening yet
            last_exc = exc
        if time.monotonic() >= deadline:
            extra = " (last error: %r)" % last_exc if last_exc else ""
            raise AssertionError("%s: not within %.1fs%s" % (what, timeout, extra))
        time.sleep(0.01)


_counter = [0]
_sweep_lock = threading.Lock()
_swept = [False]


def _sweep_orphans():
    """Remove namespaces of earlier test processes that died without cleaning up."""
    with _sweep_lock:
        if _swept[0]:
            return
        _swept[0] = True
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return
    for name in names:
        if not name.startswith(_PREFIX):
            continue
        try:
            pid = int(name[len(_PREFIX):].split("-")[0])
            os.kill(pid, 0)
            continue  # its process lives
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):
            continue
        _kill_inside(name)
        subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)


def _kill_inside(name):
    out = subprocess.run(["ip", "netns", "pids", name], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, universal_newlines=True).stdout
    for f in out.split():
        try:
            os.kill(int(f), signal.SIGKILL)
        except (ValueError, OSError):
            pass


class NS:
    """A named network namespace, deleted (with anything still running in it)
    by the cleanup it registers on test."""

    def __init__(self, test):
        _sweep_orphans()
        _counter[0] += 1
        self.name = "%s%d-%d-%06x" % (_PREFIX, os.getpid(), _counter[0], random.getrandbits(24))
        run("ip", "netns", "add", self.name)
        test.addCleanup(self._delete)
        self.ip("link", "set", "lo", "up")

    def _delete(self):
        _kill_inside(self.name)
        run("ip", "netns", "del", self.name, check=False)

    def ip(self, *args, check=True):
        """Run `ip -n NAME args...`."""
        return run("ip", "-n", self.name, *args, check=check)


def veth(a, name_a, b, name_b):
    """Connect namespaces a and b with a veth pair, both ends up.

    Deleting either namespace deletes the pair."""
    a.ip("link", "add", name_a, "type", "veth", "peer", "name", name_b, "netns", b.name)
    a.ip("link", "set", name_a, "up")
    b.ip("link", "set", name_b, "up")


def _die_with_parent():
    # Runs in the child before exec: SIGKILL it if the test process dies.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Proc:
    """A program running in a namespace (or here, ns None). Its standard error
    goes to the test log line by line and is kept for wait_line; its standard
    output is kept for the assertions. The cleanup kills it if it still runs."""

    def __init__(self, test, ns, name, args, env=None):
        self.name = name
        self.quiet = False  # True: keep the output, but stop echoing it to the log
        cmd = list(args) if ns is None else ["ip", "netns", "exec", ns.name] + list(args)
        log("$ " + " ".join(cmd))
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                  preexec_fn=_die_with_parent)
        self._cond = threading.Condition()
        self.out = []    # stdout lines
        self.err = []    # stderr lines
        self._threads = [
            threading.Thread(target=self._pump, args=(self.p.stdout, self.out, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.p.stderr, self.err, True), daemon=True),
        ]
        for t in self._threads:
            t.start()
        test.addCleanup(self._cleanup)

    def _pump(self, f, lines, echo):
        for raw in iter(f.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if echo and not self.quiet:
                log("%s: %s" % (self.name, line))
            with self._cond:
                lines.append(line)
                self._cond.notify_all()
        f.close()

    def _cleanup(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except OSError:
                pass
        self.p.wait()
        for t in self._threads:
            t.join(5)

    def wait_line(self, pred, timeout, stream="err"):
        """Wait with one deadline for a line (of stderr, or "out") for which
        pred is true; return it. Fails if the program exits first."""
        lines = self.err if stream == "err" else self.out
        deadline = time.monotonic() + timeout
        i = 0
        with self._cond:
            while True:
                while i < len(lines):
                    if pred(lines[i]):
                        return lines[i]
                    i += 1
                if self.p.poll() is not None and not any(t.is_alive() for t in self._threads):
                    raise AssertionError("%s exited (%s) before the line" % (self.name, self.p.returncode))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: no such line within %.1fs" % (self.name, timeout))
                self._cond.wait(min(left, 0.1))

    def signal(self, sig):
        self.p.send_signal(sig)

    def wait(self, timeout):
        """Wait for the program to end and its output to be read; return its exit status."""
        rc = self.p.wait(timeout)
        for t in self._threads:
            t.join(timeout)
        return rc

    def stdout(self):
        with self._cond:
            return "\n".join(self.out)


_built = {}
_build_lock = threading.Lock()


def binary(env_name, pkg, name):
    """The path of a Go program: $env_name, else built once with `go build`."""
    p = os.environ.get(env_name)
    if p:
        return p
    with _build_lock:
        if name not in _built:
            d = tempfile.mkdtemp(prefix="nmpy-bin-")
            out = os.path.join(d, name)
            log("$ go build -o %s %s (in %s)" % (out, pkg, REPO))
            r = subprocess.run(["go", "build", "-o", out, pkg], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
            if r.returncode != 0:
                raise AssertionError("go build %s: %s" % (pkg, r.stdout))
            _built[name] = out
        return _built[name]


def netmon_bin():
    return binary("NETMON_BIN", "./cmd/netmon", "netmon")


def ackserver_bin():
    return binary("ACKSERVER_BIN", "./examples/ackserver", "ackserver")


def start_netmon(test, ns, sock, *flags):
    """Run `netmon watch --socket sock` in ns and wait until it answers; return the Proc."""
    import netmon_client
    args = [netmon_bin(), "watch", "--socket", sock, "--stabilize", "0", "--sockerr=off",
            "--wifi", "off", "--log-format", "json"] + list(flags)
    p = Proc(test, ns, "netmon", args)
    client = netmon_client.Client(sock)
    wait_until("netmon answers on " + sock, lambda: p.p.poll() is None and client.state(), 30)
    return p


def tempdir(test):
    d = tempfile.mkdtemp(prefix="nmpy-")
    test.addCleanup(shutil.rmtree, d, True)
    return d
