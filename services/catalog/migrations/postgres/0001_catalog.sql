-- The catalog's schema on PostgreSQL. Only the catalog service reads or writes these tables.
CREATE TABLE categories (
    slug        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    position    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE products (
    id           UUID PRIMARY KEY,
    sku          TEXT NOT NULL UNIQUE,
    -- Byte order, as on SQLite, so both engines page products identically.
    name         TEXT COLLATE "C" NOT NULL,
    description  TEXT NOT NULL,
    category     TEXT NOT NULL REFERENCES categories (slug),
    price_amount BIGINT NOT NULL CHECK (price_amount >= 0),
    currency     TEXT NOT NULL CHECK (length(currency) = 3),
    image_url    TEXT NOT NULL,
    search       TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('english', name), 'A') || setweight(to_tsvector('english', description), 'B')
    ) STORED
);

CREATE INDEX products_by_name ON products (name, id);
CREATE INDEX products_by_category_name ON products (category, name, id);
CREATE INDEX products_search ON products USING GIN (search);
