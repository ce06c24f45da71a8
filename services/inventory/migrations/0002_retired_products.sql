-- Products the catalog deleted. Their rows stay, so their books stay (received = available +
-- reserved + sold; holds on them still commit or release), but they are out of sale: no
-- availability, no reservation, no stock setting. Their SKU moves to `retired_sku` and `sku`
-- becomes 'retired:<product_id>' (no catalog SKU has lower-case letters or a colon), so the SKU
-- is free for another product. A product the catalog lists again comes back with its SKU.
ALTER TABLE stock ADD COLUMN retired_at BIGINT;   -- when inventory learned of the deletion; NULL while on sale
ALTER TABLE stock ADD COLUMN retired_sku TEXT;    -- the SKU it had then
