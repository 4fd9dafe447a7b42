"""The demo source: a small shop database so that the example pipelines move real rows."""

from __future__ import annotations

import logging

from summit_etl.store.db import connect, ensure_database

log = logging.getLogger(__name__)

DEMO_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS shop;
CREATE TABLE IF NOT EXISTS shop.customers (
    id          bigint PRIMARY KEY,
    email       text NOT NULL,
    full_name   text NOT NULL,
    country     text NOT NULL,
    is_active   boolean NOT NULL DEFAULT true,
    attributes  jsonb NOT NULL DEFAULT '{}'::jsonb,
    signup_at   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS shop.orders (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop.customers (id),
    amount      numeric(12,2) NOT NULL,
    currency    char(3) NOT NULL DEFAULT 'EUR',
    status      text NOT NULL,
    ordered_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_updated_at ON shop.orders (updated_at);
"""

FILL = (
    """
    INSERT INTO shop.customers (id, email, full_name, country, is_active, attributes, signup_at, updated_at)
    SELECT g,
           CASE WHEN g %% 10 = 0 THEN '  Customer' || g || '@Example.COM ' ELSE 'customer' || g || '@example.com' END,
           'Customer ' || g,
           (ARRAY['DE','FR','NL','US','GB','ES'])[1 + g %% 6],
           g %% 17 <> 0,
           jsonb_build_object('tier', (ARRAY['free','pro','enterprise'])[1 + g %% 3], 'tags', jsonb_build_array('demo')),
           now() - make_interval(days => g %% 900),
           now() - make_interval(mins => g %% 600)
      FROM generate_series(1, %(customers)s) AS g
    """,
    """
    INSERT INTO shop.orders (id, customer_id, amount, status, ordered_at, updated_at)
    SELECT g,
           1 + g %% %(customers)s,
           round((5 + (g * 7919) %% 50000 / 100.0)::numeric, 2),
           (ARRAY['paid','shipped','refunded','test','paid'])[1 + g %% 5],
           now() - make_interval(mins => g %% 100000),
           now() - make_interval(secs => g %% 86400)
      FROM generate_series(1, %(orders)s) AS g
    """,
)


def prepare_demo_source(url: str, customers: int = 20_000, orders: int = 100_000) -> bool:
    """Create and fill the demo database once; True when it was filled now."""
    ensure_database(url)
    with connect(url) as conn:
        conn.execute(DEMO_SCHEMA)
        filled = conn.execute("SELECT EXISTS (SELECT 1 FROM shop.customers)").fetchone()
        if filled and filled[0]:
            return False
        with conn.transaction():
            for statement in FILL:
                conn.execute(statement, {"customers": customers, "orders": orders})
    log.info("demo source filled", extra={"customers": customers, "orders": orders})
    return True


def add_demo_activity(url: str, new_orders: int = 50) -> None:
    """New and changed orders, so incremental runs of the demo find something to do."""
    with connect(url) as conn, conn.transaction():
        conn.execute(
            """
            INSERT INTO shop.orders (id, customer_id, amount, status, ordered_at)
            SELECT m.top + g, 1 + (m.top + g) %% c.n, round((10 + random() * 490)::numeric, 2),
                   'paid', now()
              FROM generate_series(1, %s) AS g,
                   (SELECT coalesce(max(id), 0) AS top FROM shop.orders) AS m,
                   (SELECT count(*) AS n FROM shop.customers) AS c
            """,
            (new_orders,),
        )
        conn.execute(
            "UPDATE shop.orders SET status = 'shipped', updated_at = now() "
            "WHERE id IN (SELECT id FROM shop.orders WHERE status = 'paid' ORDER BY random() LIMIT %s)",
            (max(new_orders // 5, 1),),
        )
