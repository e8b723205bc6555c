"""The Python client's pattern in the delivery benchmark (internal/delivery).

  robot_producer.py EXAMPLES_PYTHON SOCKET HOST PORT SECONDS DRAIN

runs examples/python/robot_sender.py's Sender as it is, with netmon's client on SOCKET (a
`netmon watch --socket` beside it), fed by a producer that makes one message every 50 ms for
SECONDS instead of sending 1..N at once, and gives up DRAIN seconds after the producer stops.
It prints "C N NS" when message N is made and "D NS" at the start of each connection attempt
(wall-clock nanoseconds). Acknowledgement and dial timeouts are 2 s, as for the Go senders.
"""
import asyncio
import sys
import time

sys.path.insert(0, sys.argv[1])

import robot_sender  # noqa: E402
from netmon_client import Client  # noqa: E402

EVERY = 0.05


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Produced(robot_sender.Sender):
    """A Sender whose message N exists only once the producer has made it."""

    made = 0

    def next_to_write(self):
        seq = super().next_to_write()
        return seq if seq and seq <= self.made else 0


async def produce(s):
    start = time.monotonic()
    for n in range(1, s.count + 1):
        await asyncio.sleep(max(0.0, start + (n - 1) * EVERY - time.monotonic()))
        out("C %d %d" % (n, time.time_ns()))
        s.made = n
        if s.wake is not None:
            s.wake.set()  # the session waits on it for something to write


_open = asyncio.open_connection


async def counted_open(*args, **kwargs):
    out("D %d" % time.time_ns())
    return await _open(*args, **kwargs)


asyncio.open_connection = counted_open  # what robot_sender dials with


async def main(sock, host, port, seconds, drain):
    count = max(1, int(-(-seconds // EVERY)))  # as many as the Go producer makes
    s = Produced(host, port, count, ack_timeout=2.0, dial_timeout=2.0, client=Client(sock),
                 sender_id="robot", epoch=1)
    p = asyncio.ensure_future(produce(s))
    try:
        await asyncio.wait_for(s.run(), seconds + drain)
    except asyncio.TimeoutError:
        pass
    p.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])))
    out("END")
