#!/usr/bin/env python3
"""Checkout end to end against a running shop (bench/checkout.sh starts one): checkouts per
second, time from POST /api/v1/orders to `confirmed`, and the event lag to the purchase history.
Prints a report; asserts nothing.

Each virtual shopper loops: put one product in the cart, POST an order (Idempotency-Key), poll
the order until it is confirmed or cancelled, then poll its history until the purchase shows as
confirmed there too. Closed loop (a shopper waits for its order): this measures latency at the
throughput the shop sustains with that many shoppers, not an arrival rate (`souk bench` will).

usage: checkout.py GATEWAY IDENTITY ADMIN_EMAIL ADMIN_PASSWORD [--users N] [--duration S]
"""
import argparse, concurrent.futures, http.client, json, statistics, threading, time, uuid

parser = argparse.ArgumentParser()
parser.add_argument("gateway")
parser.add_argument("identity")
parser.add_argument("admin_email")
parser.add_argument("admin_password")
parser.add_argument("--users", type=int, default=8)
parser.add_argument("--duration", type=float, default=20.0)
args = parser.parse_args()


def connect(hostport):
    host, port = hostport.split(":")
    return http.client.HTTPConnection(host, int(port), timeout=30)


def call(c, method, path, body=None, token=None, headers=None):
    h = {"content-type": "application/json"}
    if token:
        h["authorization"] = f"Bearer {token}"
    h.update(headers or {})
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if data else None)


def sign_in(email, password):
    # Straight to identity: the gateway limits sign-ins per address, and every shopper here
    # comes from one.
    c = connect(args.identity)
    call(c, "POST", "/v1/auth/register", {"email": email, "password": password, "name": "Bench"})
    status, tokens = call(c, "POST", "/v1/auth/login", {"email": email, "password": password})
    assert status == 200, tokens
    return tokens["access_token"]


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


gw = connect(args.gateway)
admin = sign_in(args.admin_email, args.admin_password)
status, page = call(gw, "GET", "/api/v1/products?limit=20")
products = page["items"]
for product in products:  # enough stock that nothing sells out during the run
    path = f"/api/v1/admin/stock/{product['sku']}"
    for _ in range(300):  # inventory learns new products from the catalog a moment after start
        status, stock = call(gw, "GET", path, token=admin)
        if status == 200:
            # A count is set from the version read (If-Match); read again if it moved.
            status, _ = call(gw, "PUT", path, {"quantity": 1_000_000}, admin,
                             {"if-match": f'"{stock["version"]}"'})
            if status == 200:
                break
        time.sleep(0.1)
    assert status == 200, status

lock = threading.Lock()
to_confirmed, to_history, outcomes = [], [], {}
deadline = time.monotonic() + args.duration


def shopper(n):
    token = sign_in(f"bench-{uuid.uuid4().hex[:12]}@example.com", "a long benchmark passphrase")
    c = connect(args.gateway)
    status, card = call(c, "POST", "/api/v1/payment-methods",
                        {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}, token)
    assert status == 201, card
    i = 0
    while time.monotonic() < deadline:
        product = products[(n + i) % len(products)]
        i += 1
        call(c, "PUT", f"/api/v1/cart/items/{product['id']}", {"quantity": 1}, token)
        body = {"payment_method_id": card["id"], "shipping_address": {
            "name": "Bench", "line1": "1 Loop Road", "city": "Testville", "postal_code": "12345", "country": "GB"}}
        started = time.monotonic()
        status, order = call(c, "POST", "/api/v1/orders", body, token, {"idempotency-key": uuid.uuid4().hex})
        if status != 202:
            with lock:
                outcomes[f"POST {status}"] = outcomes.get(f"POST {status}", 0) + 1
            continue
        while True:
            status, order = call(c, "GET", f"/api/v1/orders/{order['id']}", token=token)
            if order["status"] != "pending":
                break
            time.sleep(0.005)
        confirmed_at = time.monotonic()
        while order["status"] == "confirmed":
            status, purchase = call(c, "GET", f"/api/v1/history/{order['id']}", token=token)
            if status == 200 and purchase["status"] == "confirmed":
                break
            time.sleep(0.005)
        with lock:
            outcomes[order["status"]] = outcomes.get(order["status"], 0) + 1
            if order["status"] == "confirmed":
                to_confirmed.append(confirmed_at - started)
                to_history.append(time.monotonic() - confirmed_at)
        # The cart empties on order_confirmed: wait for it, so the next order is one line.
        for _ in range(500):
            status, cart = call(c, "GET", "/api/v1/cart", token=token)
            if not cart["items"]:
                break
            time.sleep(0.005)


started = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(args.users) as pool:
    list(pool.map(shopper, range(args.users)))
elapsed = time.monotonic() - started

ms = lambda s: f"{s * 1000:.1f}"
confirmed = outcomes.get("confirmed", 0)
print(f"{args.users} shoppers for {args.duration:.0f} s: {confirmed} orders confirmed, outcomes {outcomes}")
print(f"checkouts per second (confirmed): {confirmed / elapsed:.1f}")
print(f"POST → confirmed: p50 {ms(statistics.median(to_confirmed))} ms, p99 {ms(percentile(to_confirmed, 99))} ms, max {ms(max(to_confirmed))} ms")
print(f"event lag, confirmed → in history: p50 {ms(statistics.median(to_history))} ms, p99 {ms(percentile(to_history, 99))} ms")
