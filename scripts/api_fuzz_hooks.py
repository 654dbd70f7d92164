"""Schemathesis hooks for scripts/api-fuzz.sh: a fuzz user with real data, its bearer
token, and real ids in half of the generated paths.

At load time (before any test) this registers three users through the API under test
(`API_FUZZ_URL`), makes the first one admin of a group with the other two, opens its
direct chat with the second, sends a message to each, and registers a push device.
Then:

- every request carries the fuzz user's access token (`Authorization: Bearer`),
  renewed through `POST /auth/refresh` every 5 minutes, so long runs outlive the
  15-minute token;
- about half of the generated `chatId`, `userId` and `deviceId` path values are
  replaced by the real ones, so the fuzzer reaches the code behind the membership
  checks (send, read, rename, add and remove members, mute, history, devices) and not
  only the 404 for an unknown chat.

The ids are written to `API_FUZZ_STATE` (JSON), and the statuses seen per operation to
`API_FUZZ_STATS` (JSON), for the script's summary.
"""

import json
import os
import atexit
import collections
import itertools
import urllib.error
import urllib.request
import uuid

import schemathesis

BASE = os.environ["API_FUZZ_URL"].rstrip("/")
PASSWORD = "correct horse battery staple"


def call(method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode()
            return resp.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"setup: {method} {path} -> {e.code} {e.read().decode()}") from e


def register(tag):
    name = f"fz{tag}{uuid.uuid4().hex[:12]}"
    _, body = call(
        "POST",
        "/auth/register",
        {"userName": name, "password": PASSWORD, "displayName": f"Fuzz {tag}"},
    )
    return body


me, peer, other = register("me"), register("peer"), register("other")
token = me["tokens"]["accessToken"]
refresh_token = me["tokens"]["refreshToken"]
ids = {u["user"]["userId"] for u in (me, peer, other)}
_, group = call(
    "POST",
    "/chats",
    {"kind": "group", "name": "fuzz group", "memberIds": [peer["user"]["userId"], other["user"]["userId"]]},
    token,
)
_, direct = call("POST", "/chats", {"kind": "direct", "userId": peer["user"]["userId"]}, token)
chats = [group["chatId"], direct["chatId"]]
for chat in chats:
    call("POST", f"/chats/{chat}/messages", {"clientMessageId": uuid.uuid4().hex, "text": "seed"}, token)
_, device = call("POST", "/devices", {"platform": "fcm", "token": "fuzz-" + uuid.uuid4().hex * 2}, token)
STATE = {
    "userId": me["user"]["userId"],
    "users": sorted(ids),
    "chats": chats,
    "deviceId": device["deviceId"],
}
if os.environ.get("API_FUZZ_STATE"):
    with open(os.environ["API_FUZZ_STATE"], "w") as f:
        json.dump(STATE, f)


@schemathesis.auth(refresh_interval=300)
class FuzzUser:
    """The fuzz user's access token; each renewal rotates its refresh token."""

    first = True

    def get(self, case, ctx):
        global token, refresh_token
        if not FuzzUser.first:
            try:
                _, pair = call("POST", "/auth/refresh", {"refreshToken": refresh_token})
            except RuntimeError:
                # After logout-all the session is gone: log in again.
                _, session = call("POST", "/auth/login", {"userName": me["user"]["userName"], "password": PASSWORD})
                pair = session["tokens"]
            token, refresh_token = pair["accessToken"], pair["refreshToken"]
        FuzzUser.first = False
        return token

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


def pick(values):
    return lambda n: values[n % len(values)]


# The fuzz user's own id and `me` would make it leave its group at the first
# `DELETE /chats/{chatId}/members/{userId}`, so only the others' ids are used there.
REAL = {
    "chatId": pick(STATE["chats"]),
    "userId": pick([u for u in STATE["users"] if u != STATE["userId"]]),
    "deviceId": pick([STATE["deviceId"]]),
}
# Hypothesis reseeds the `random` module for every example, so alternate with a counter.
drawn = itertools.count()


@schemathesis.hook
def map_path_parameters(ctx, path_parameters):
    if not path_parameters:
        return path_parameters
    path_parameters = dict(path_parameters)
    n = next(drawn)
    if n % 2 == 0:
        for name, real in REAL.items():
            if name in path_parameters:
                path_parameters[name] = real(n // 2)
    return path_parameters


# Statuses seen per operation, written to API_FUZZ_STATS (JSON) when the run ends.
STATS = collections.defaultdict(collections.Counter)


@schemathesis.hook
def after_call(ctx, case, response):
    STATS[f"{case.operation.method.upper()} {case.operation.path}"][str(response.status_code)] += 1


@atexit.register
def write_stats():
    if os.environ.get("API_FUZZ_STATS"):
        with open(os.environ["API_FUZZ_STATS"], "w") as f:
            json.dump({op: dict(c) for op, c in sorted(STATS.items())}, f, indent=1)
