-- The catalog's schema on SQLite. Only the catalog service reads or writes these tables.
CREATE TABLE categories (
    slug        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    position    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE products (
    id           TEXT PRIMARY KEY,              -- UUIDv7, hyphenated
    sku          TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    category     TEXT NOT NULL REFERENCES categories (slug),
    price_amount INTEGER NOT NULL CHECK (price_amount >= 0),
    currency     TEXT NOT NULL CHECK (length(currency) = 3),
    image_url    TEXT NOT NULL
);

-- Keyset paging: by name then id, overall and within a category.
CREATE INDEX products_by_name ON products (name, id);
CREATE INDEX products_by_category_name ON products (category, name, id);

-- Full-text search over name and description, kept in step with products by triggers.
CREATE VIRTUAL TABLE products_fts USING fts5 (
    name, description,
    content = 'products', content_rowid = 'rowid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, name, description) VALUES (new.rowid, new.name, new.description);
END;

CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description) VALUES ('delete', old.rowid, old.name, old.description);
END;

CREATE TRIGGER products_fts_update AFTER UPDATE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description) VALUES ('delete', old.rowid, old.name, old.description);
    INSERT INTO products_fts (rowid, name, description) VALUES (new.rowid, new.name, new.description);
END;
