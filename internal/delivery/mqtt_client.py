"""The MQTT side of the delivery benchmark (internal/delivery), paho-mqtt 1.6's defaults.

  mqtt_client.py pub HOST PORT SECONDS DRAIN   publish one QoS 1 message every 50 ms for SECONDS,
      then wait up to DRAIN seconds for the broker's PUBACKs; print "C N NS" when message N is
      made (wall-clock nanoseconds), "D NS" at the start of each connection attempt, "END" last.
  mqtt_client.py sub HOST PORT                 subscribe at QoS 1; print "A N NS" for every copy.
"""
import sys
import threading
import time

import paho.mqtt.client as mqtt

TOPIC = "delivery/robot"


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def pub(host, port, seconds, drain):
    c = mqtt.Client(client_id="robot", clean_session=True)
    acked = set()
    lock = threading.Lock()

    def on_publish(client, userdata, mid):
        with lock:
            acked.add(mid)

    c.on_publish = on_publish
    reconnect = c.reconnect

    def counted_reconnect():
        out("D %d" % time.time_ns())
        return reconnect()

    c.reconnect = counted_reconnect  # loop_start's thread calls it for every attempt
    c.connect_async(host, port)
    c.loop_start()
    mids = []
    start = time.monotonic()
    n = 0
    while True:
        due = start + n * 0.05
        if due - start >= seconds:
            break
        time.sleep(max(0.0, due - time.monotonic()))
        n += 1
        out("C %d %d" % (n, time.time_ns()))
        mids.append(c.publish(TOPIC, str(n), qos=1).mid)
    end = time.monotonic() + drain
    while time.monotonic() < end:
        with lock:
            if all(m in acked for m in mids):
                break
        time.sleep(0.05)
    c.loop_stop()
    out("END")


def sub(host, port):
    c = mqtt.Client(client_id="server", clean_session=True)

    def on_connect(client, userdata, flags, rc):
        client.subscribe(TOPIC, qos=1)
        out("READY")

    def on_message(client, userdata, msg):
        out("A %s %d" % (msg.payload.decode(), time.time_ns()))

    c.on_connect = on_connect
    c.on_message = on_message
    c.connect(host, port)
    c.loop_forever()


if __name__ == "__main__":
    if sys.argv[1] == "pub":
        pub(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    else:
        sub(sys.argv[2], int(sys.argv[3]))
