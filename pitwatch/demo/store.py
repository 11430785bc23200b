"""The demo platform's SQLite database: schema, trades -> positions, OHLC bars.

Times are unix seconds (REAL), so the exporter's ``max(executed_at)`` is already a
``*_timestamp_seconds`` value. Positions are net per (account, symbol): a trade on
the other side reduces, closes or flips the open one.
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

SCHEMA = """
create table if not exists instruments (
    symbol text primary key,
    name text not null,
    exchange text not null,
    tick real not null,
    multiplier real not null
);
create table if not exists users (
    id integer primary key,
    username text not null unique,
    password_hash text not null,
    locked integer not null default 0,
    created_at real not null
);
create table if not exists trades (
    id integer primary key,
    account text not null,
    symbol text not null references instruments(symbol),
    side text not null check (side in ('buy', 'sell')),
    quantity integer not null check (quantity > 0),
    price real not null check (price > 0),
    executed_at real not null
);
create index if not exists trades_symbol_time on trades(symbol, executed_at);
create index if not exists trades_time on trades(executed_at);
create table if not exists positions (
    id integer primary key,
    account text not null,
    symbol text not null references instruments(symbol),
    side text not null check (side in ('long', 'short')),
    quantity integer not null,
    avg_price real not null,
    opened_at real not null,
    closed_at real
);
create index if not exists positions_open on positions(account, symbol) where closed_at is null;
"""

TIMEFRAME_SECONDS = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}
MAX_BARS = 200

# SQLite primary result codes (sqlite3.Error.sqlite_errorcode & 0xff).
_CORRUPT, _NOTADB, _BUSY, _LOCKED = 11, 26, 5, 6


def error_kind(exc: sqlite3.Error) -> str:
    """corruption | locked | other, for pitwatch_app_db_errors_total{kind}."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(exc).lower()
    if code in (_CORRUPT, _NOTADB) or "malformed" in text or "not a database" in text:
        return "corruption"
    if code in (_BUSY, _LOCKED) or "locked" in text or "busy" in text:
        return "locked"
    return "other"


def connect(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """Open an existing database read-write; never create an empty one by accident."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=timeout,
                           isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def create(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("pragma journal_mode=wal")
    conn.executescript(SCHEMA)
    return conn


def record_trade(conn: sqlite3.Connection, account: str, symbol: str, side: str,
                 quantity: int, price: float, executed_at: float | None = None) -> dict:
    """Store a trade and update the account's net position, in one transaction.

    Returns ``{"trade_id", "position_opened"}``.
    """
    now = time.time() if executed_at is None else executed_at
    conn.execute("begin immediate")
    try:
        cur = conn.execute(
            "insert into trades(account, symbol, side, quantity, price, executed_at)"
            " values (?, ?, ?, ?, ?, ?)", (account, symbol, side, quantity, price, now))
        trade_id = cur.lastrowid
        opened = _apply_to_position(conn, account, symbol, side, quantity, price, now)
        conn.execute("commit")
    except BaseException:
        if conn.in_transaction:
            conn.execute("rollback")
        raise
    return {"trade_id": trade_id, "position_opened": opened}


def _apply_to_position(conn, account, symbol, side, quantity, price, now) -> bool:
    want = "long" if side == "buy" else "short"
    pos = conn.execute(
        "select id, side, quantity, avg_price from positions"
        " where account = ? and symbol = ? and closed_at is null", (account, symbol)).fetchone()
    if pos is None:
        conn.execute(
            "insert into positions(account, symbol, side, quantity, avg_price, opened_at)"
            " values (?, ?, ?, ?, ?, ?)", (account, symbol, want, quantity, price, now))
        return True
    if pos["side"] == want:
        total = pos["quantity"] + quantity
        avg = (pos["avg_price"] * pos["quantity"] + price * quantity) / total
        conn.execute("update positions set quantity = ?, avg_price = ? where id = ?",
                     (total, avg, pos["id"]))
        return False
    left = pos["quantity"] - quantity
    if left > 0:
        conn.execute("update positions set quantity = ? where id = ?", (left, pos["id"]))
        return False
    conn.execute("update positions set closed_at = ? where id = ?", (now, pos["id"]))
    if left < 0:  # flipped: the remainder opens a position on the other side
        conn.execute(
            "insert into positions(account, symbol, side, quantity, avg_price, opened_at)"
            " values (?, ?, ?, ?, ?, ?)", (account, symbol, want, -left, price, now))
        return True
    return False


def open_positions(conn: sqlite3.Connection, account: str | None = None) -> list[dict]:
    sql = ("select p.id, p.account, p.symbol, p.side, p.quantity, p.avg_price, p.opened_at,"
           " (select price from trades t where t.symbol = p.symbol"
           "  order by executed_at desc limit 1) as last_price, i.multiplier"
           " from positions p join instruments i on i.symbol = p.symbol"
           " where p.closed_at is null")
    args: tuple = ()
    if account:
        sql += " and p.account = ?"
        args = (account,)
    out = []
    for r in conn.execute(sql + " order by p.account, p.symbol", args):
        sign = 1 if r["side"] == "long" else -1
        pnl = sign * (r["last_price"] - r["avg_price"]) * r["quantity"] * r["multiplier"]
        out.append({
            "id": r["id"], "account": r["account"], "symbol": r["symbol"], "side": r["side"],
            "quantity": r["quantity"], "avg_price": round(r["avg_price"], 8),
            "last_price": r["last_price"], "unrealized_pnl_usd": round(pnl, 2),
            "opened_at": r["opened_at"],
        })
    return out


def ohlc(conn: sqlite3.Connection, symbol: str, timeframe: str,
         now: float | None = None) -> list[dict]:
    """OHLC bars with volume for the last MAX_BARS periods, oldest first."""
    step = TIMEFRAME_SECONDS[timeframe]
    now = time.time() if now is None else now
    since = (now // step - MAX_BARS + 1) * step
    bars: dict[int, dict] = {}
    rows = conn.execute(
        "select executed_at, price, quantity from trades"
        " where symbol = ? and executed_at >= ? order by executed_at, id", (symbol, since))
    for at, price, qty in rows:
        start = int(at // step * step)
        bar = bars.get(start)
        if bar is None:
            bars[start] = {"t": start, "open": price, "high": price, "low": price,
                           "close": price, "volume": qty}
        else:
            bar["high"] = max(bar["high"], price)
            bar["low"] = min(bar["low"], price)
            bar["close"] = price
            bar["volume"] += qty
    return list(bars.values())


def health_probe(conn: sqlite3.Connection) -> dict:
    """A real query over the trades table.

    ``sum(quantity)`` is in no index, so every table page is read and damage shows.
    """
    count, last, _ = conn.execute(
        "select count(*), max(executed_at), sum(quantity) from trades").fetchone()
    return {"trades": count, "last_trade_at": last}
