#!/usr/bin/env python3
"""What each order leaves in the shop's SQLite databases, and what retention takes away.

Drives a running shop (bench/retention.sh starts one): signs up shoppers, puts stock on sale,
places N one-line orders and waits for each to end and for its events to reach every consumer,
then reads every database under the data dir read-only (SQLite's dbstat: the bytes of each table
and its indexes, pages included). `measure` prints rows and bytes per table; `diff` prints the
per-order growth between two measurements. A report; asserts nothing.

usage: retention.py orders GATEWAY IDENTITY ADMIN_EMAIL ADMIN_PASSWORD N
       retention.py measure DATA_DIR OUT.json
       retention.py diff BASE.json AFTER.json N [LABEL]
"""
import http.client, json, sqlite3, sys, time, uuid
from pathlib import Path


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


def sign_in(identity, email, password):
    c = connect(identity)
    call(c, "POST", "/v1/auth/register", {"email": email, "password": password, "name": "Bench"})
    status, tokens = call(c, "POST", "/v1/auth/login", {"email": email, "password": password})
    assert status == 200, tokens
    return tokens["access_token"]


def orders(gateway, identity, admin_email, admin_password, n):
    gw = connect(gateway)
    admin = sign_in(identity, admin_email, admin_password)
    status, page = call(gw, "GET", "/api/v1/products?limit=5")
    products = page["items"]
    for product in products:
        for _ in range(300):  # inventory learns products a moment after start
            status, _ = call(gw, "POST", f"/api/v1/admin/stock/{product['sku']}/adjustments",
                             {"delta": 10_000, "reason": "retention bench"}, admin,
                             {"idempotency-key": f"bench-{product['sku']}"})
            if status in (200, 201):
                break
            time.sleep(0.1)
        assert status in (200, 201), status
    shoppers = []
    for i in range(5):
        token = sign_in(identity, f"retention-{uuid.uuid4().hex[:10]}@example.com", "a long benchmark passphrase")
        status, card = call(gw, "POST", "/api/v1/payment-methods",
                            {"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}, token)
        assert status == 201, card
        shoppers.append((token, card["id"]))
    print("setup done", flush=True)
    input()  # the caller measures the baseline, then presses enter
    last = None
    for i in range(n):
        token, card = shoppers[i % len(shoppers)]
        product = products[i % len(products)]
        status, _ = call(gw, "PUT", f"/api/v1/cart/items/{product['id']}", {"quantity": 1}, token)
        assert status == 200, status
        address = {"name": "Bench", "line1": "1 Main St", "city": "London", "postal_code": "N1", "country": "GB"}
        status, order = call(gw, "POST", "/api/v1/orders", {"payment_method_id": card, "shipping_address": address},
                             token, {"idempotency-key": f"retention-{i}"})
        assert status == 202, order
        for _ in range(600):
            status, seen = call(gw, "GET", f"/api/v1/orders/{order['id']}", token=token)
            if seen["status"] != "pending":
                break
            time.sleep(0.05)
        assert seen["status"] == "confirmed", seen
        last = (token, order["id"])
    token, order = last
    for _ in range(600):  # the last purchase in history: every consumer has caught up
        status, history = call(gw, "GET", "/api/v1/history?limit=1", token=token)
        if history["items"] and history["items"][0]["order_id"] == order and history["items"][0]["payment"]:
            break
        time.sleep(0.1)
    time.sleep(2)
    print("orders done", flush=True)


def measure(data_dir, out):
    result = {}
    for db in sorted(Path(data_dir).glob("*.db")):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        owners = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"))
        tables = {}
        for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            table = owners.get(name, name)
            if table.startswith("sqlite_") or table == "_sqlx_migrations":
                continue
            tables.setdefault(table, {"rows": 0, "bytes": 0})["bytes"] += size
        for table in tables:
            tables[table]["rows"] = conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
        result[db.stem] = tables
        conn.close()
    Path(out).write_text(json.dumps(result, indent=1))


def diff(base, after, n, label):
    base, after = json.loads(Path(base).read_text()), json.loads(Path(after).read_text())
    total_rows = total_bytes = 0
    print(f"{label}: per order, over {n} orders (rows, bytes of table + indexes)")
    for db in sorted(after):
        for table in sorted(after[db]):
            b = base.get(db, {}).get(table, {"rows": 0, "bytes": 0})
            a = after[db][table]
            rows, size = (a["rows"] - b["rows"]) / n, (a["bytes"] - b["bytes"]) / n
            if rows or size:
                print(f"  {db + '.' + table:42} {rows:7.2f} rows {size:9.0f} B")
                total_rows += rows
                total_bytes += size
    print(f"  {'total':42} {total_rows:7.2f} rows {total_bytes:9.0f} B")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "orders":
        orders(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
    elif command == "measure":
        measure(sys.argv[2], sys.argv[3])
    elif command == "diff":
        diff(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "growth")
