-- The bank-card acquirer's journal on PostgreSQL (src/acquirer/postgres.rs), version 1.
--
-- The same tables, columns and states as the SQLite journal (src/acquirer/journal.rs,
-- schema version 1, layout 2), so that a batch cut from either store for the same
-- transactions is the same bytes: integers are BIGINT where SQLite has INTEGER, byte
-- strings the same upper-case hexadecimal TEXT, F and G the same JSON text.
--
-- Applied by telepay itself when it opens the database, in one transaction, under an
-- advisory lock so that several processes opening a new database at once do not race;
-- `schema_migrations` (made by telepay, not here) records that it was.
--
-- Where it differs from SQLite, for several writers:
-- - `seq` is an identity column. Numbers are taken when a row is inserted, not when it
--   commits, so they may have gaps and a later number may commit first: the
--   transactions waiting for a cut-off are found by their state (the partial index
--   `transactions_authorised`), not as those after the last batch's highest `seq`.
-- - `cards.last_atc` may be NULL: an authorisation makes the card's row before it
--   locks it (`INSERT ... ON CONFLICT DO NOTHING`, then `SELECT ... FOR UPDATE`), so
--   that two processes authorising one card take turns; NULL is "no counter spent".

-- The acquirer this journal belongs to, fixed by the first transaction recorded.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE batches (
    number BIGINT PRIMARY KEY CHECK (number >= 1),
    acquirer TEXT NOT NULL,
    cut_off_at BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'sent', 'acknowledged')),
    records BIGINT NOT NULL CHECK (records >= 1),
    bytes BIGINT NOT NULL CHECK (bytes > 0),
    checksum TEXT NOT NULL CHECK (length(checksum) = 64),
    sent_at BIGINT,
    acknowledged_at BIGINT,
    CHECK ((state = 'open') = (sent_at IS NULL)),
    CHECK ((state = 'acknowledged') = (acknowledged_at IS NOT NULL))
);

CREATE TABLE batch_totals (
    batch BIGINT NOT NULL REFERENCES batches (number),
    currency BIGINT NOT NULL CHECK (currency BETWEEN 0 AND 999),
    records BIGINT NOT NULL CHECK (records >= 1),
    total_minor BIGINT NOT NULL CHECK (total_minor >= 0),
    PRIMARY KEY (batch, currency)
);

-- Every reversal received, for a transaction seen or not (yet): a marker for a payment
-- never seen makes a later F for it refused.
CREATE TABLE reversals (
    payment TEXT PRIMARY KEY,
    purchase TEXT NOT NULL,
    acquirer TEXT NOT NULL,
    reason TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

CREATE TABLE transactions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment TEXT NOT NULL UNIQUE,
    purchase TEXT NOT NULL,
    merchant TEXT NOT NULL,
    pan TEXT NOT NULL,
    pan_sequence BIGINT NOT NULL CHECK (pan_sequence BETWEEN 0 AND 255),
    expiry TEXT NOT NULL,
    atc BIGINT NOT NULL CHECK (atc BETWEEN 0 AND 65535),
    -- NULL only for a refused amount beyond 64-bit signed integers.
    amount_minor BIGINT CHECK (amount_minor >= 0),
    currency BIGINT NOT NULL CHECK (currency BETWEEN 0 AND 65535),
    requested_at BIGINT NOT NULL,
    transaction_date TEXT NOT NULL,
    cryptogram TEXT NOT NULL CHECK (length(cryptogram) = 16),
    amount_other TEXT NOT NULL,
    transaction_type TEXT NOT NULL,
    terminal_country TEXT NOT NULL,
    aid TEXT NOT NULL,
    aip TEXT NOT NULL,
    tvr TEXT NOT NULL,
    unpredictable_number TEXT NOT NULL,
    cid BIGINT NOT NULL CHECK (cid BETWEEN 0 AND 255),
    iad TEXT NOT NULL,
    authorisation_code TEXT,
    state TEXT NOT NULL CHECK (state IN ('authorised', 'in-batch', 'remitted',
        'acknowledged-by-centre', 'refused', 'reversed')),
    -- Checked at commit: a cut-off moves the transactions before it inserts the batch.
    batch BIGINT REFERENCES batches (number) DEFERRABLE INITIALLY DEFERRED,
    recorded_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    f_json TEXT NOT NULL,
    g_json TEXT NOT NULL,
    -- A transaction is in a batch exactly in the batch states.
    CHECK ((batch IS NOT NULL)
        = (state IN ('in-batch', 'remitted', 'acknowledged-by-centre'))),
    -- Only what was authorised has an authorisation code, and a remittable amount.
    CHECK ((authorisation_code IS NULL) = (state = 'refused')),
    CHECK (state = 'refused' OR amount_minor IS NOT NULL)
);

-- Each batch's transactions in their order, for writing and marking it.
CREATE INDEX transactions_in_batch ON transactions (batch, seq) WHERE batch IS NOT NULL;

-- The transactions waiting for a cut-off, in their order.
CREATE INDEX transactions_authorised ON transactions (seq) WHERE state = 'authorised';

-- Each card's last transaction counter (NULL: the card is known, no counter spent).
CREATE TABLE cards (
    pan TEXT NOT NULL,
    pan_sequence BIGINT NOT NULL CHECK (pan_sequence BETWEEN 0 AND 255),
    last_atc BIGINT CHECK (last_atc BETWEEN 0 AND 65535),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (pan, pan_sequence)
);
