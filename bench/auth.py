#!/usr/bin/env python3
"""Measures what token checks and login limits cost, against a running `souk up` (bench/auth.sh
starts one). Prints a report; asserts nothing.

1. Gateway CPU per request on a user route (/api/v1/me) with one token again and again (the
   per-thread verified-token cache hits) and with a fresh token every request (every request is
   a signature check), from the gateway process's own CPU time in /proc.
2. Login throughput: correct logins spread over many accounts (Argon2id-bound), and a burst of
   wrong passwords against one account (the throttle answers before any hashing).
"""
import concurrent.futures, http.client, json, os, sys, time

gateway_host, gateway_port = sys.argv[1].split(":")
gateway_pid = int(sys.argv[2])
# Identity directly: the gateway limits sign-in per address, which one benchmark client would hit.
identity_host, identity_port = sys.argv[3].split(":")
ticks_per_sec = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_sec


def conn():
    return http.client.HTTPConnection(gateway_host, int(gateway_port), timeout=30)


def identity():
    return http.client.HTTPConnection(identity_host, int(identity_port), timeout=30)


def call(c, method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if data else None)


c = identity()
call(c, "POST", "/v1/auth/register", {"email": "bench@example.com", "password": "a benchmark passphrase", "name": "Bench"})
status, pair = call(c, "POST", "/v1/auth/login", {"email": "bench@example.com", "password": "a benchmark passphrase"})
assert status == 200, (status, pair)

# Distinct access tokens without any login throttle: each refresh rotates the pair.
n = 2000
tokens, refresh = [], pair["refresh_token"]
for _ in range(n):
    status, pair = call(c, "POST", "/v1/auth/refresh", {"refresh_token": refresh})
    assert status == 200, (status, pair)
    tokens.append(pair["access_token"])
    refresh = pair["refresh_token"]


def measure(label, token_for):
    c = conn()
    before, started = cpu_seconds(gateway_pid), time.monotonic()
    for i in range(n):
        status, _ = call(c, "GET", "/api/v1/me", token=token_for(i))
        assert status == 200, status
    cpu, wall = cpu_seconds(gateway_pid) - before, time.monotonic() - started
    print(f"  {label:<44} {cpu / n * 1e6:8.1f} µs CPU/request   ({n} requests, {n / wall:.0f}/s, one client)")
    return cpu / n * 1e6


def anonymous_public():
    c = conn()
    before = cpu_seconds(gateway_pid)
    for _ in range(n):
        c.request("GET", "/api/v1/categories")
        c.getresponse().read()
    return (cpu_seconds(gateway_pid) - before) / n * 1e6


print("gateway CPU per request (sequential requests from one client; the gateway's own CPU time):")
public = anonymous_public()
print(f"  {'public route, no token':<44} {public:8.1f} µs CPU/request")
cached = measure("user route, one token (verified-token cache)", lambda i: tokens[-1])
uncached = measure("user route, a new token each request", lambda i: tokens[i])
print(f"  => a signature check costs about {uncached - cached:.1f} µs; the cache saves it on every repeat")

print("\nlogins with the limiters on (identity directly: per-account throttle, bounded hashing):")
accounts = 16
for i in range(accounts):
    call(c, "POST", "/v1/auth/register", {"email": f"u{i}@example.com", "password": "another long passphrase", "name": f"U{i}"})


def login(i):
    c = identity()
    return call(c, "POST", "/v1/auth/login", {"email": f"u{i % accounts}@example.com", "password": "another long passphrase"})[0]


started = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    statuses = list(pool.map(login, range(accounts * 8)))
wall = time.monotonic() - started
ok = statuses.count(200)
print(f"  correct logins over {accounts} accounts, 8 at a time: {ok}/{len(statuses)} ok, {ok / wall:.1f} logins/s (Argon2id m=19 MiB t=2)")


def wrong(_):
    c = identity()
    return call(c, "POST", "/v1/auth/login", {"email": "bench@example.com", "password": "not the right one at all"})[0]


before, started = cpu_seconds(gateway_pid), time.monotonic()
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    statuses = list(pool.map(wrong, range(1000)))
wall = time.monotonic() - started
print(f"  1000 wrong passwords for one account, 8 at a time: {statuses.count(401)} answered 401 (hashed), "
      f"{statuses.count(429)} answered 429, in {wall:.2f} s ({1000 / wall:.0f}/s)")


def through_gateway(_):
    c = conn()
    return call(c, "POST", "/api/v1/auth/login", {"email": "nobody@example.com", "password": "not the right one at all"})[0]


before, started = cpu_seconds(gateway_pid), time.monotonic()
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    statuses = list(pool.map(through_gateway, range(1000)))
wall = time.monotonic() - started
print(f"  1000 sign-ins from one address through the gateway: {statuses.count(429)} answered 429 by the gateway's "
      f"per-address limit, {len(statuses) - statuses.count(429)} reached identity, in {wall:.2f} s")
