#!/usr/bin/env python3
"""A stand-in for Twilio's REST API for `make demo` and the e2e (never for production). Like Twilio
(form bodies, JSON answers, HTTP Basic with the account SID as the user):
- `POST /2010-04-01/Accounts/{AC}/Messages.json`: 201 with the Message (`status` `queued`); each
  SMS it "sends" is appended to the JSON-lines file MESSAGES_FILE, so the demo can show what staff
  would receive. `GET .../Messages.json` lists them, newest first.
- `POST /2010-04-01/Accounts/{AC}/Calls.json`: a created call. `To` (else 400, code 21201), `From`
  (21213) and `Url` or `Twiml` (21205) are required; 201 with the Call resource as Twilio answers a
  create (`sid` `CA…`, `status` `queued`, `direction` `outbound-api`, no start, end or duration
  yet). Each created call is appended to CALLS_FILE (when given) as `{"sid", "fields": [[name,
  value], …]}`, every form field in the order sent (`StatusCallbackEvent` repeats).
- `POST .../Calls/{CallSid}.json`: a live-call redirect, answered 200 `in-progress`.
A request without Basic credentials for the account in its path is refused with 401, code 20003.

usage: fake-twilio-rest.py PORT MESSAGES_FILE [CALLS_FILE]
"""
import base64
import json
import re
import sys
import threading
import urllib.parse
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
OUT = sys.argv[2]
CALLS_OUT = sys.argv[3] if len(sys.argv) > 3 else None
SENT = []
CALLS = []
LOCK = threading.Lock()
ACCOUNT_PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/(.+)$")


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

    def error(self, status, code, message):
        return self.answer(status, {
            "code": code,
            "message": message,
            "more_info": "https://www.twilio.com/docs/errors/%d" % code,
            "status": status,
        })

    def account(self):
        """The account SID of the path when the request's Basic user is that account, else None."""
        match = ACCOUNT_PATH.match(urllib.parse.urlsplit(self.path).path)
        header = self.headers.get("authorization", "")
        if not match or not header.startswith("Basic "):
            return None
        try:
            user = base64.b64decode(header[6:]).decode().split(":", 1)[0]
        except ValueError:
            return None
        return match.group(1) if user == match.group(1) else None

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        pairs = urllib.parse.parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True)
        form = dict(pairs)
        account = self.account()
        if account is None:
            return self.error(401, 20003, "Authenticate")
        if self.path.endswith("/Messages.json"):
            with LOCK:
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
        if self.path.endswith("/Calls.json"):
            if not form.get("To"):
                return self.error(400, 21201, "No 'To' number is specified")
            if not form.get("From"):
                return self.error(400, 21213, "No 'From' number is specified")
            if not form.get("Url") and not form.get("Twiml"):
                return self.error(400, 21205, "Url or Twiml is required")
            now = formatdate(usegmt=True).replace("GMT", "+0000")
            with LOCK:
                sid = "CA%032x" % (0xCA110000 + len(CALLS) + 1)
                CALLS.append(sid)
                if CALLS_OUT:
                    with open(CALLS_OUT, "a", encoding="utf-8") as f:
                        f.write(json.dumps({"sid": sid, "fields": pairs}, ensure_ascii=False) + "\n")
            uri = "/2010-04-01/Accounts/%s/Calls/%s" % (account, sid)
            return self.answer(201, {
                "account_sid": account,
                "annotation": None,
                "answered_by": None,
                "api_version": "2010-04-01",
                "caller_name": None,
                "date_created": now,
                "date_updated": now,
                "direction": "outbound-api",
                "duration": None,
                "end_time": None,
                "forwarded_from": None,
                "from": form["From"],
                "from_formatted": form["From"],
                "group_sid": None,
                "parent_call_sid": None,
                "phone_number_sid": None,
                "price": None,
                "price_unit": "USD",
                "queue_time": "0",
                "sid": sid,
                "start_time": None,
                "status": "queued",
                "subresource_uris": {
                    "notifications": uri + "/Notifications.json",
                    "recordings": uri + "/Recordings.json",
                    "events": uri + "/Events.json",
                },
                "to": form["To"],
                "to_formatted": form["To"],
                "trunk_sid": None,
                "uri": uri + ".json",
            })
        if "/Calls/" in self.path:
            return self.answer(200, {"sid": self.path.rsplit("/", 1)[-1][:-5], "status": "in-progress"})
        return self.error(404, 20404, "The requested resource %s was not found" % self.path)

    def do_GET(self):
        if self.account() is None:
            return self.error(401, 20003, "Authenticate")
        if "/Messages.json" in self.path:
            with LOCK:
                return self.answer(200, {"messages": list(reversed(SENT))})
        return self.error(404, 20404, "The requested resource %s was not found" % self.path)


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
