-- The sample shop behind the support-chat template: a few customers and their orders.
-- tools.py builds the database from this file on first use; refunds start empty.
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    since TEXT NOT NULL
);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    item TEXT NOT NULL,
    total_eur REAL NOT NULL CHECK (total_eur >= 0),
    status TEXT NOT NULL CHECK (status IN ('paid', 'shipped', 'delivered', 'cancelled')),
    ordered_on TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    invoice_id TEXT NOT NULL UNIQUE
);

-- One refund per order at most: the UNIQUE constraint is the last guard against a
-- second refund, after request_refund's own check.
CREATE TABLE refunds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL UNIQUE REFERENCES orders(id),
    amount_eur REAL NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL
);

INSERT INTO customers (id, name, email, since) VALUES
    ('C-101', 'Anna Berg', 'anna.berg@example.com', '2023-04-12'),
    ('C-102', 'Luis Ortega', 'luis.ortega@example.com', '2024-01-30'),
    ('C-103', 'Mei Tanaka', 'mei.tanaka@example.com', '2022-11-05'),
    ('C-104', 'Tom Fischer', 'tom.fischer@example.com', '2025-06-18');

INSERT INTO orders (id, customer_id, item, total_eur, status, ordered_on, payment_method, invoice_id) VALUES
    ('NW-1042', 'C-101', 'Ridgeline 2P tent', 249.00, 'delivered', '2026-10-02', 'card', 'INV-2026-0412'),
    ('NW-1043', 'C-101', 'Summit 45 backpack', 139.00, 'shipped', '2026-11-20', 'card', 'INV-2026-0488'),
    ('NW-1051', 'C-102', 'Trail runner shoes', 119.90, 'delivered', '2026-10-28', 'paypal', 'INV-2026-0451'),
    ('NW-1060', 'C-103', 'Down sleeping bag -10C', 329.00, 'delivered', '2026-09-14', 'invoice', 'INV-2026-0377'),
    ('NW-1061', 'C-103', 'Camping stove', 59.50, 'cancelled', '2026-11-02', 'invoice', 'INV-2026-0466'),
    ('NW-1070', 'C-104', 'Rain jacket', 189.00, 'paid', '2026-11-24', 'card', 'INV-2026-0497');
