-- The bank-card acquirer's journal on PostgreSQL, version 3: F and G in columns, as the
-- SQLite journal holds them since its schema version 2 (layout 3, src/acquirer/journal.rs).
--
-- Each authorisation stored F and G as JSON (about 1.3 KB) beside columns that already
-- held most of them. The rest of F's request (service, designation and its digest,
-- amount exponent, nonce, validity, accepted means, pseudo-session), E's terminal, the
-- card's 9F02, 5F2A and PIN check, and G's response code, ARPC and refusal reason get
-- columns; f_json and g_json stay, NULL where the columns state F or G exactly, and
-- filled in the rows recorded before (and for what the columns cannot state: a
-- provision, an amount beyond 64-bit signed integers, a request for another merchant).
--
-- Adding nullable columns rewrites no row; the two checks read every row once.

ALTER TABLE transactions
    ALTER COLUMN f_json DROP NOT NULL,
    ALTER COLUMN g_json DROP NOT NULL,
    ADD COLUMN service TEXT,
    ADD COLUMN designation TEXT,
    ADD COLUMN designation_digest TEXT,
    ADD COLUMN amount_exponent BIGINT CHECK (amount_exponent BETWEEN 0 AND 255),
    ADD COLUMN nonce TEXT,
    ADD COLUMN valid_until BIGINT,
    ADD COLUMN accepted_means TEXT,
    ADD COLUMN session TEXT,
    ADD COLUMN terminal TEXT,
    ADD COLUMN card_amount TEXT,
    ADD COLUMN card_currency TEXT,
    ADD COLUMN pin_verified BOOLEAN,
    ADD COLUMN response_code TEXT,
    ADD COLUMN arpc TEXT,
    ADD COLUMN refusal_reason TEXT,
    ADD CHECK (f_json IS NOT NULL OR terminal IS NOT NULL),
    ADD CHECK (g_json IS NOT NULL OR response_code IS NOT NULL);
