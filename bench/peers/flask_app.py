"""The Flask peer: the stack the peers table in BENCHMARKS.md measured, written the way a
typical Flask developer would, serving brisk's seven demo questions.

- Flask 3 with Flask-Caching (`@cache.cached(query_string=True)`,
  SimpleCache with its default threshold of 500 entries per worker, 60 s,
  or NullCache when the cache is off) and Flask-Compress with its defaults
  (zstd, br, gzip, deflate; gzip level 6, br 4, min 500 bytes; every
  response compressed again, nothing cached compressed).
- The database through the standard library's sqlite3 module directly (no
  ORM): one read-only connection per worker process, rows as sqlite3.Row,
  turned into dicts and serialised by Flask's JSON provider (`jsonify`).
- Q5's `include=user,order_items.product` is one query per relation level,
  batched by key (orders page; `users WHERE id IN (...)`; `order_items WHERE
  order_id IN (...)`; `products WHERE id IN (...)`), stitched in Python: the
  careful way, not one query per row.
- The answer shape is brisk's: `{"data": ..., "meta": {"limit", "page"},
  "links": {"self", "next", "prev"}}` for collections, `{"data": {...}}` for
  one row, 404 `{"error": ...}` when a row is absent. No cursors, no ETags
  of its own (Werkzeug adds none to JSON answers).

Environment: FLASK_PEER_DB (the SQLite file; default target/bench/shop.db),
FLASK_PEER_CACHE (`on`, default, for SimpleCache; `off` for NullCache).

Run (bench/compare.py does this):

    /tmp/brisk-peers-venv/bin/gunicorn -w 2 -b 127.0.0.1:8081 \
        --chdir bench/peers flask_app:app
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse

from flask import Flask, abort, jsonify, request
from flask_caching import Cache
from flask_compress import Compress

DB = os.environ.get("FLASK_PEER_DB", "target/bench/shop.db")
CACHE_ON = os.environ.get("FLASK_PEER_CACHE", "on").lower() not in ("off", "false", "0", "no")

app = Flask(__name__)
# Keep the columns in table order, as brisk does (Flask sorts keys by default).
app.json.sort_keys = False
app.config["CACHE_TYPE"] = "SimpleCache" if CACHE_ON else "NullCache"
app.config["CACHE_DEFAULT_TIMEOUT"] = 60
cache = Cache(app)
Compress(app)

COLUMNS = {
    "users": ["id", "name", "email", "profile_picture", "country", "created_at", "updated_at"],
    "products": ["id", "name", "category", "price", "stock", "description", "created_at", "updated_at"],
    "orders": ["id", "user_id", "status", "total", "created_at", "updated_at"],
    "order_items": ["id", "order_id", "product_id", "quantity", "unit_price"],
}
DEFAULT_LIMIT, MAX_LIMIT = 20, 1000


def db() -> sqlite3.Connection:
    connection = getattr(app, "_connection", None)
    if connection is None:
        # one connection per worker process (gunicorn forks after import)
        connection = sqlite3.connect(f"file:{DB}?mode=ro", uri=True, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        app._connection = connection
    return connection


def rows(sql: str, params: list | tuple = ()) -> list[dict]:
    return [dict(row) for row in db().execute(sql, params).fetchall()]


def bad_request(message: str):
    response = jsonify({"error": message})
    response.status_code = 400
    abort(response)


def paging() -> tuple[int, int]:
    try:
        limit = int(request.args.get("limit", DEFAULT_LIMIT))
        page = int(request.args.get("page", 1))
    except ValueError:
        bad_request("limit and page must be integers")
    if not 1 <= limit <= MAX_LIMIT or page < 1:
        bad_request(f"limit must be 1..{MAX_LIMIT} and page >= 1")
    return limit, page


def fields(table: str) -> list[str]:
    wanted = request.args.get("fields")
    if not wanted:
        return COLUMNS[table]
    names = [name.strip() for name in wanted.split(",") if name.strip()]
    unknown = [name for name in names if name not in COLUMNS[table]]
    if unknown:
        bad_request(f"unknown fields {unknown}")
    return names


def order_by(table: str) -> str:
    """`sort=price_asc`, `sort=-price,name`; the id breaks ties."""
    keys = []
    for item in request.args.get("sort", "").split(","):
        item = item.strip()
        if not item:
            continue
        descending = item.startswith("-") or item.endswith("_desc")
        name = item.lstrip("-").removesuffix("_asc").removesuffix("_desc")
        if name not in COLUMNS[table]:
            bad_request(f"unknown sort field {name!r}")
        keys.append(f"{name} {'DESC' if descending else 'ASC'}")
    if "id ASC" not in keys and "id DESC" not in keys:
        keys.append("id ASC")
    return ", ".join(keys)


def page_links(limit: int, page: int, count: int) -> dict:
    args = request.args.to_dict()

    def link(number: int) -> str:
        return request.path + "?" + urllib.parse.urlencode(args | {"page": number, "limit": limit})

    links = {"self": link(page)}
    if count == limit:
        links["next"] = link(page + 1)
    if page > 1:
        links["prev"] = link(page - 1)
    return links


def collection(table: str, where: str = "", params: list | None = None):
    limit, page = paging()
    columns = fields(table)
    sql = f"SELECT {', '.join(columns)} FROM {table}{where} ORDER BY {order_by(table)} LIMIT ? OFFSET ?"
    data = rows(sql, (params or []) + [limit, (page - 1) * limit])
    return data, {"limit": limit, "page": page}, page_links(limit, page, len(data))


def filters(table: str) -> tuple[str, list]:
    clauses, params = [], []
    for name, value in request.args.items():
        if name in ("limit", "page", "sort", "fields", "include"):
            continue
        if name not in COLUMNS[table]:
            bad_request(f"unknown filter {name!r}")
        clauses.append(f"{name} = ?")
        params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


@app.get("/v1/users")
@cache.cached(query_string=True)
def users():
    where, params = filters("users")
    data, meta, links = collection("users", where, params)
    return jsonify(data=data, meta=meta, links=links)


@app.get("/v1/users/<int:user_id>")
@cache.cached(query_string=True)
def user(user_id: int):
    found = rows(f"SELECT {', '.join(fields('users'))} FROM users WHERE id = ?", (user_id,))
    if not found:
        abort(404)
    return jsonify(data=found[0])


@app.get("/v1/users/<int:user_id>/orders")
@cache.cached(query_string=True)
def user_orders(user_id: int):
    if not rows("SELECT id FROM users WHERE id = ?", (user_id,)):
        abort(404)
    data, meta, links = collection("orders", " WHERE user_id = ?", [user_id])
    return jsonify(data=data, meta=meta, links=links)


@app.get("/v1/products")
@cache.cached(query_string=True)
def products():
    where, params = filters("products")
    data, meta, links = collection("products", where, params)
    return jsonify(data=data, meta=meta, links=links)


def by_id(table: str, column: str, keys: set) -> dict:
    """Rows of `table` whose `column` is one of `keys`, grouped by it."""
    if not keys:
        return {}
    marks = ", ".join("?" * len(keys))
    grouped: dict = {}
    for row in rows(f"SELECT * FROM {table} WHERE {column} IN ({marks}) ORDER BY id", list(keys)):
        grouped.setdefault(row[column], []).append(row)
    return grouped


@app.get("/v1/orders")
@cache.cached(query_string=True)
def orders():
    where, params = filters("orders")
    data, meta, links = collection("orders", where, params)
    include = {name.strip() for name in request.args.get("include", "").split(",") if name.strip()}
    unknown = include - {"user", "order_items", "order_items.product"}
    if unknown:
        bad_request(f"unknown include {sorted(unknown)}")
    if "user" in include:
        users_by_id = by_id("users", "id", {order["user_id"] for order in data})
        for order in data:
            order["user"] = users_by_id.get(order["user_id"], [None])[0]
    if include & {"order_items", "order_items.product"}:
        items = by_id("order_items", "order_id", {order["id"] for order in data})
        if "order_items.product" in include:
            keys = {item["product_id"] for group in items.values() for item in group}
            products_by_id = by_id("products", "id", keys)
            for group in items.values():
                for item in group:
                    item["product"] = products_by_id.get(item["product_id"], [None])[0]
        for order in data:
            order["order_items"] = items.get(order["id"], [])
    return jsonify(data=data, meta=meta, links=links)


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
