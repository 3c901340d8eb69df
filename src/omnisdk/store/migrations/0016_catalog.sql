-- The catalog: variants (sellable SKUs; `price` is a decimal number kept as text, exactly as given),
-- stock per location ("online" or a store's location id), and the changes of price and stock, kept
-- until the catalog watcher has handled them (`handled` = 0: a durable queue, like touchpoints.routed).
CREATE TABLE catalog_variants (
    sku TEXT PRIMARY KEY,
    product_id TEXT NOT NULL,
    title TEXT NOT NULL,
    price TEXT NOT NULL,
    currency TEXT NOT NULL,
    url TEXT,
    image_url TEXT,
    category TEXT,
    brand TEXT,
    attributes {json} NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX catalog_variants_product ON catalog_variants (product_id);
CREATE INDEX catalog_variants_category ON catalog_variants (category);

CREATE TABLE catalog_inventory (
    sku TEXT NOT NULL,
    location TEXT NOT NULL,
    quantity {bigint} NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (sku, location)
);

-- kind: 'price' (old/new are decimal text) or 'stock' (old/new are unit counts, at `location`).
CREATE TABLE catalog_changes (
    seq {pk},
    sku TEXT NOT NULL,
    kind TEXT NOT NULL,
    location TEXT,
    old_value TEXT,
    new_value TEXT NOT NULL,
    source TEXT NOT NULL,
    changed_at DOUBLE PRECISION NOT NULL,
    handled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX catalog_changes_unhandled ON catalog_changes (seq) WHERE handled = 0;

-- Who waits for a SKU to come back: subscribed (`omni.catalog.subscribe`) or viewed it sold out.
-- location '' is any location. `notified_at` is set when a restock's quota included them.
CREATE TABLE catalog_subscriptions (
    customer_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    location TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    notified_at DOUBLE PRECISION,
    PRIMARY KEY (customer_id, sku, location)
);
CREATE INDEX catalog_subscriptions_waiting ON catalog_subscriptions (sku, created_at) WHERE notified_at IS NULL;

-- Each customer's interest in a SKU, kept current from the touchpoints as they are recorded: last
-- viewed, carted and purchased, how often purchased (for the expected reorder time), and when each
-- catalog trigger last fired for it (so one view, cart or purchase fires each trigger once).
CREATE TABLE catalog_interest (
    customer_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    viewed_at DOUBLE PRECISION,
    carted_at DOUBLE PRECISION,
    purchased_at DOUBLE PRECISION,
    first_purchased_at DOUBLE PRECISION,
    purchases INTEGER NOT NULL DEFAULT 0,
    reorder_due_at DOUBLE PRECISION,
    browse_sent_at DOUBLE PRECISION,
    price_sent_at DOUBLE PRECISION,
    low_stock_sent_at DOUBLE PRECISION,
    PRIMARY KEY (customer_id, sku)
);
CREATE INDEX catalog_interest_sku ON catalog_interest (sku);
CREATE INDEX catalog_interest_viewed ON catalog_interest (viewed_at);
CREATE INDEX catalog_interest_reorder ON catalog_interest (reorder_due_at) WHERE reorder_due_at IS NOT NULL;
