#!/usr/bin/env python3
"""A stand-in for Twilio's REST API for `make demo` (never for production): accepts
`POST /2010-04-01/Accounts/{AC}/Messages.json` and `POST .../Calls/{CallSid}.json` like Twilio
(form body, 201/200 with JSON), and appends every SMS it "sends" to the JSON-lines file given as
the second argument, so the demo can show what staff would receive.

usage: fake-twilio-rest.py PORT MESSAGES_FILE
"""
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
OUT = sys.argv[2]
SENT = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        if self.path.endswith("/Messages.json"):
            if not self.headers.get("authorization", "").startswith("Basic "):
                return self.answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
            message = {
                "sid": "SM%032x" % (len(SENT) + 1),
                "status": "queued",
                "to": form.get("To"),
                "from": form.get("From"),
                "body": form.get("Body", ""),
            }
            SENT.append(message)
            with open(OUT, "a", encoding="utf-8") as f:
                f.write(json.dumps(message, ensure_ascii=False) + "\n")
            return self.answer(201, message)
        if "/Calls/" in self.path:
            return self.answer(200, {"sid": self.path.rsplit("/", 1)[-1][:-5], "status": "in-progress"})
        return self.answer(404, {"code": 20404, "message": "not found", "status": 404})

    def do_GET(self):
        if "/Messages.json" in self.path:
            return self.answer(200, {"messages": list(reversed(SENT))})
        return self.answer(404, {"code": 20404, "message": "not found", "status": 404})


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
