-- The Virtual Wallet's accounts on PostgreSQL (src/acquirer/wallet/postgres.rs), version 2.
--
-- The same tables, columns, constraints and states as the SQLite store
-- (src/acquirer/wallet/store.rs, wallet schema version 1 with its additions), so that
-- the same calls give the same rows and answers: integers are BIGINT where SQLite has
-- INTEGER, byte strings BYTEA where SQLite has BLOB. All tables are named `wallet_*`,
-- apart from the card journal's of 0001: a card acquirer and a wallet acquirer may
-- share one database.
--
-- Applied by the wallet store when it opens the database (the card journal applies
-- 0001, the wallet this one: either may come first), in one transaction under the
-- same advisory lock; `schema_migrations` (made by telepay, not here) records it.
--
-- Where it differs from SQLite, for several writers:
-- - `wallet_disputes.number` is an identity column: a number is taken when a row is
--   inserted, so a dispute whose insert lost a race (and was answered as repeated)
--   leaves a gap in the case numbers.
-- - No `wallet_schema` table: the version is in `schema_migrations`.

CREATE TABLE wallet_accounts (
    key BYTEA PRIMARY KEY CHECK (octet_length(key) = 33),
    currency BIGINT NOT NULL CHECK (currency BETWEEN 0 AND 65535),
    exponent BIGINT NOT NULL CHECK (exponent BETWEEN 0 AND 255),
    -- The balance can never go negative, nor the provisions exceed it, whatever the
    -- code above does.
    balance BIGINT NOT NULL CHECK (balance >= 0),
    reserved BIGINT NOT NULL CHECK (reserved >= 0 AND reserved <= balance),
    last_sequence BIGINT NOT NULL CHECK (last_sequence >= 0),
    opened_at BIGINT NOT NULL
);

CREATE TABLE wallet_credits (
    reference TEXT PRIMARY KEY,
    account BYTEA NOT NULL REFERENCES wallet_accounts (key),
    amount BIGINT NOT NULL CHECK (amount > 0),
    recorded_at BIGINT NOT NULL
);
CREATE INDEX wallet_credits_by_account ON wallet_credits (account);

CREATE TABLE wallet_provisions (
    session TEXT PRIMARY KEY,
    account BYTEA NOT NULL REFERENCES wallet_accounts (key),
    merchant TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    sequence_floor BIGINT NOT NULL CHECK (sequence_floor >= 0),
    state TEXT NOT NULL CHECK (state = 'open' OR state = 'settled'),
    debited BIGINT CHECK (debited >= 0 AND debited <= amount),
    reserved_at BIGINT NOT NULL,
    settled_at BIGINT,
    CHECK ((state = 'settled') = (debited IS NOT NULL)),
    CHECK ((state = 'settled') = (settled_at IS NOT NULL))
);

-- Every payment debited, with the bytes signed and the signature as received.
CREATE TABLE wallet_payments (
    account BYTEA NOT NULL REFERENCES wallet_accounts (key),
    sequence BIGINT NOT NULL CHECK (sequence >= 1),
    payment TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    session TEXT REFERENCES wallet_provisions (session),
    message BYTEA NOT NULL,
    signature BYTEA NOT NULL CHECK (octet_length(signature) = 64),
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (account, sequence)
);
CREATE INDEX wallet_payments_by_session ON wallet_payments (session) WHERE session IS NOT NULL;
CREATE INDEX wallet_payments_by_payment ON wallet_payments (payment);

-- The first payment of a session, which opened its provision: kept as signed, and
-- not debited until the session is settled (it is one of the session's payments).
CREATE TABLE wallet_openings (
    session TEXT PRIMARY KEY REFERENCES wallet_provisions (session),
    account BYTEA NOT NULL REFERENCES wallet_accounts (key),
    sequence BIGINT NOT NULL CHECK (sequence >= 1),
    payment TEXT NOT NULL,
    message BYTEA NOT NULL,
    signature BYTEA NOT NULL CHECK (octet_length(signature) = 64),
    recorded_at BIGINT NOT NULL,
    -- One signed payment opens one provision.
    UNIQUE (account, sequence)
);
CREATE INDEX wallet_openings_by_payment ON wallet_openings (payment);

-- The front-end's cancellations, seen or not: a reversed payment is never debited
-- after; `refund` names the credit that gave back one debited before.
CREATE TABLE wallet_reversals (
    payment TEXT PRIMARY KEY,
    purchase TEXT NOT NULL,
    reason TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    refund TEXT UNIQUE REFERENCES wallet_credits (reference)
);

-- The negative acknowledgements G given to transactions F that the store refused, by
-- payment, with a digest of F: a repeated F gets the same G even once the account
-- has changed (a reload after insufficient funds).
CREATE TABLE wallet_refused_transactions (
    payment TEXT PRIMARY KEY,
    digest BYTEA NOT NULL CHECK (octet_length(digest) = 32),
    acknowledgement TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);

-- The disputes recorded for review (claims 8, 9), each with its statement as signed,
-- once per dispute identifier; `number` makes the case number. No balance changes.
CREATE TABLE wallet_disputes (
    number BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dispute TEXT NOT NULL UNIQUE,
    account BYTEA NOT NULL REFERENCES wallet_accounts (key),
    payment TEXT NOT NULL,
    merchant TEXT NOT NULL,
    message BYTEA NOT NULL,
    signature BYTEA NOT NULL CHECK (octet_length(signature) = 64),
    recorded_at BIGINT NOT NULL
);
CREATE INDEX wallet_disputes_by_account ON wallet_disputes (account);

-- What a settlement refused, so that a repeated settlement answers the same.
CREATE TABLE wallet_settlement_refusals (
    session TEXT NOT NULL REFERENCES wallet_provisions (session),
    position BIGINT NOT NULL CHECK (position >= 0),
    payment TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (session, position)
);
