#!/usr/bin/env python3
"""Plays a Pilot 2 login against a minimal cloud on loopback, so that tcpdump can record it.

Developer tool for recording Captures/ (see scripts/record-demo-capture); not used at run time.
Standard library only: a tiny HTTP cloud (the reference demo's routes), a cloud backend MQTT client that
answers status_reply, and a Pilot 2 that logs in over HTTP, connects to the broker, publishes update_topo,
waits for the reply, sends osd, goes actively offline (empty sub_devices) and disconnects.
"""
import http.client
import os
import http.server
import json
import socket
import struct
import sys
import threading
import time
import uuid

HTTP_PORT, MQTT_PORT = int(sys.argv[1]), int(sys.argv[2])
# Fault injection: FAULT=no-status-reply makes the cloud backend ignore update_topo.
FAULT = os.environ.get("FAULT", "")
RC_SN, AIRCRAFT_SN = "5YSZL260021E9A", "1581F5FHD232600D3B4E"
WORKSPACE = "e3dea0f5-37f2-4d79-ae58-490af3228069"
TOKEN = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ3b3Jrc3BhY2VfaWQiOiJlM2RlYTBmNS0zN2YyLTRkNzktYWU1OC00OTBhZjMyMjgwNjkiLCJ"
         "1c2VybmFtZSI6InBpbG90IiwidXNlcl90eXBlIjoiMiJ9.c2lnbmF0dXJlLW5vdC12ZXJpZmllZC1pbi10aGUtZGVtbw")
USER = {"user_id": "be7c6c3d-afe9-4be4-b9eb-c55066c0914e", "username": "pilot", "user_type": 2,
        "workspace_id": WORKSPACE, "mqtt_username": "pilot", "mqtt_password": "pilot123",
        "mqtt_addr": f"tcp://127.0.0.1:{MQTT_PORT}"}


class Cloud(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/pilot-login":
            return self.reply(200, "<!doctype html><title>Cloud Api Platform</title><div id=app></div>", "text/html")
        if self.headers.get("x-auth-token") != TOKEN:
            return self.reply(401, "", "text/plain")
        if self.path == "/manage/api/v1/workspaces/current":
            return self.reply(200, {"code": 0, "message": "success", "data": {
                "id": 1, "workspace_id": WORKSPACE, "workspace_name": "Test Group One",
                "workspace_desc": "Cloud API demo", "platform_name": "Cloud Api Platform", "bind_code": "qwe"}})
        if self.path == "/manage/api/v1/users/current":
            return self.reply(200, {"code": 0, "message": "success", "data": USER})
        self.reply(404, {"code": -1, "message": "not found", "data": ""})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if self.path == "/manage/api/v1/login" and body.get("username") == "pilot" and body.get("password") == "pilot123":
            return self.reply(200, {"code": 0, "message": "success", "data": dict(USER, access_token=TOKEN)})
        self.reply(200, {"code": 401, "message": "invalid password", "data": ""})


def mqtt_string(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def mqtt_packet(first, body):
    out, n = bytearray([first]), len(body)
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out) + body


def read_packet(sock):
    first = sock.recv(1)
    if not first:
        return None, None
    length, shift = 0, 0
    while True:
        b = sock.recv(1)[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return first[0], body


def connect(client_id, username=None, password=None, keepalive=60):
    sock = socket.create_connection(("127.0.0.1", MQTT_PORT))
    flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)
    body = mqtt_string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + mqtt_string(client_id)
    if username:
        body += mqtt_string(username)
    if password:
        body += mqtt_string(password)
    sock.sendall(mqtt_packet(0x10, body))
    kind, ack = read_packet(sock)
    assert kind == 0x20 and ack[1] == 0, f"CONNACK refused: {ack!r}"
    return sock


def subscribe(sock, packet_id, *topics):
    body = struct.pack("!H", packet_id) + b"".join(mqtt_string(t) + b"\x01" for t in topics)
    sock.sendall(mqtt_packet(0x82, body))
    kind, _ = read_packet(sock)
    assert kind == 0x90


def publish(sock, topic, payload, qos=0, packet_id=0):
    body = mqtt_string(topic) + (struct.pack("!H", packet_id) if qos else b"") + json.dumps(payload, separators=(",", ":")).encode()
    sock.sendall(mqtt_packet(0x30 | (qos << 1), body))


def parse_publish(first, body):
    n = struct.unpack("!H", body[:2])[0]
    topic = body[2:2 + n].decode()
    rest = body[2 + n + (2 if (first >> 1) & 3 else 0):]
    return topic, json.loads(rest)


def cloud_backend(ready):
    sock = connect("cloud-backend-7f3a", "cloud", "cloud-secret", keepalive=10)
    subscribe(sock, 1, "sys/product/+/status")
    ready.set()
    while True:
        kind, body = read_packet(sock)
        if kind is None:
            return
        if kind >> 4 == 3:
            if (kind >> 1) & 3 == 1:
                sock.sendall(mqtt_packet(0x40, body[2 + struct.unpack("!H", body[:2])[0]:][:2]))  # PUBACK
            topic, msg = parse_publish(kind, body)
            if FAULT == "no-status-reply":
                continue
            # The reference demo's reply: tid and bid echoed, data.result 0, no method.
            reply = {"tid": msg["tid"], "bid": msg["bid"], "timestamp": int(time.time() * 1000), "data": {"result": 0}}
            publish(sock, topic + "_reply", reply)
        if kind >> 4 == 14:
            return


def update_topo(sub_devices):
    return {"tid": str(uuid.uuid4()), "bid": str(uuid.uuid4()), "method": "update_topo",
            "timestamp": int(time.time() * 1000), "gateway": RC_SN,
            "data": {"domain": "2", "type": 119, "sub_type": 0, "device_secret": "d3v1c3-s3cr3t", "nonce": "n0nc3",
                     "thing_version": "1.1.2", "sub_devices": sub_devices}}


def pilot():
    h5 = http.client.HTTPConnection("127.0.0.1", HTTP_PORT)
    h5.request("GET", "/pilot-login")
    h5.getresponse().read()
    h5.request("POST", "/manage/api/v1/login", body=json.dumps({"username": "pilot", "password": "pilot123", "flag": 2}),
               headers={"Content-Type": "application/json"})
    login = json.loads(h5.getresponse().read())["data"]
    headers = {"x-auth-token": login["access_token"]}
    h5.request("GET", "/manage/api/v1/workspaces/current", headers=headers)
    h5.getresponse().read()
    h5.request("GET", "/manage/api/v1/users/current", headers=headers)
    user = json.loads(h5.getresponse().read())["data"]
    h5.close()

    sock = connect(RC_SN, user["mqtt_username"], user["mqtt_password"], keepalive=60)
    subscribe(sock, 1, f"sys/product/{RC_SN}/status_reply", f"thing/product/{RC_SN}/services",
              f"thing/product/{RC_SN}/events_reply", f"thing/product/{RC_SN}/requests_reply",
              f"thing/product/{RC_SN}/property/set", f"thing/product/{RC_SN}/drc/down")
    aircraft = [{"sn": AIRCRAFT_SN, "domain": "0", "type": 89, "sub_type": 0, "index": "A",
                 "device_secret": "a1rcr4ft-s3cr3t", "nonce": "n0nc3", "thing_version": "1.1.2"}]
    for sub_devices in (aircraft, None, []):
        if sub_devices is None:
            for sn in (RC_SN, AIRCRAFT_SN):  # two osd rounds while online
                publish(sock, f"thing/product/{sn}/osd", {"tid": str(uuid.uuid4()), "bid": str(uuid.uuid4()),
                        "timestamp": int(time.time() * 1000), "gateway": RC_SN, "data": {"capacity_percent": 87}})
            time.sleep(0.2)
            continue
        # Like Pilot 2: re-send status until a reply comes (here every 2 s, 3 tries, then give up).
        answered = False
        for attempt in range(3):
            msg = update_topo(sub_devices)
            publish(sock, f"sys/product/{RC_SN}/status", msg, qos=1, packet_id=2 + attempt)
            sock.settimeout(2)
            try:
                while True:
                    kind, body = read_packet(sock)
                    if kind >> 4 == 3 and parse_publish(kind, body)[1].get("tid") == msg["tid"]:
                        answered = True
                        break
            except socket.timeout:
                pass
            sock.settimeout(None)
            if answered:
                break
        if not answered:
            break
        time.sleep(0.1)
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", HTTP_PORT), Cloud)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ready = threading.Event()
    threading.Thread(target=cloud_backend, args=(ready,), daemon=True).start()
    ready.wait(5)
    pilot()
    time.sleep(0.3)
    server.shutdown()


if __name__ == "__main__":
    main()
