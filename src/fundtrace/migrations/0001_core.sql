-- 0001 core: the input tables, load provenance and evaluation labels.
-- Money is DECIMAL(18,4) (DOUBLE would admit NaN and infinity); every timestamp is UTC.
-- An account is keyed by (bank, account); account_key() encodes it to a 64-bit integer once, at load,
-- because integer joins are 1.5-3x faster than string joins in detection.

CREATE MACRO account_key(bank, account) AS hash(bank, account);

CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);

CREATE TABLE batches (
    batch_id       INTEGER PRIMARY KEY,
    kind           VARCHAR NOT NULL,      -- transactions | accounts | links | reports | calls
    profile        VARCHAR NOT NULL,      -- native | amlsim | amlworld
    path           VARCHAR NOT NULL,
    sha256         VARCHAR NOT NULL,
    loaded_at      TIMESTAMP NOT NULL,
    rows_in        BIGINT NOT NULL,
    rows_kept      BIGINT NOT NULL,
    rows_rejected  BIGINT NOT NULL,
    rows_duplicate BIGINT NOT NULL,       -- already in the workspace with the same content: skipped
    rows_updated   BIGINT NOT NULL        -- accounts whose registry row this batch replaced
);

CREATE TABLE rejects (
    batch_id INTEGER NOT NULL,
    file     VARCHAR NOT NULL,
    line     BIGINT,                      -- CSV record number (header = 1); Parquet row number (first = 1)
    reason   VARCHAR NOT NULL,            -- a reason code, see README "Rejected rows"
    detail   VARCHAR,
    raw      VARCHAR
);

CREATE TABLE transactions (
    txn_id      VARCHAR NOT NULL,
    ts          TIMESTAMP NOT NULL,
    src_bank    VARCHAR NOT NULL,
    src_account VARCHAR NOT NULL,
    dst_bank    VARCHAR NOT NULL,
    dst_account VARCHAR NOT NULL,
    src_id      UBIGINT NOT NULL,         -- account_key(src_bank, src_account)
    dst_id      UBIGINT NOT NULL,
    amount      DECIMAL(18, 4) NOT NULL CHECK (amount > 0),
    currency    VARCHAR NOT NULL,
    channel     VARCHAR NOT NULL,
    batch_id    INTEGER NOT NULL
);

CREATE TABLE accounts (
    bank        VARCHAR NOT NULL,
    account     VARCHAR NOT NULL,
    account_id  UBIGINT NOT NULL,
    holder_id   VARCHAR,
    holder_name VARCHAR,
    phone       VARCHAR,
    opened_at   TIMESTAMP,
    kind        VARCHAR,                  -- personal | business | merchant | ...
    balance     DECIMAL(18, 4),
    balance_at  TIMESTAMP,
    batch_id    INTEGER NOT NULL          -- one row per (bank, account): the loader keeps the latest
);

CREATE TABLE links (
    bank       VARCHAR NOT NULL,
    account    VARCHAR NOT NULL,
    account_id UBIGINT NOT NULL,
    kind       VARCHAR NOT NULL,          -- phone_card | bank_card | device | id_card | ip
    value      VARCHAR NOT NULL,
    first_seen TIMESTAMP,
    batch_id   INTEGER NOT NULL           -- one row per (bank, account, kind, value): the loader checks
);

CREATE TABLE reports (
    case_id        VARCHAR NOT NULL,
    victim_bank    VARCHAR,
    victim_account VARCHAR,
    reported_at    TIMESTAMP NOT NULL,
    amount_lost    DECIMAL(18, 4) NOT NULL CHECK (amount_lost > 0),
    txn_id         VARCHAR,               -- the fraud payment, when known
    first_bank     VARCHAR,               -- else the first-level account ...
    first_account  VARCHAR,
    paid_at        TIMESTAMP,             -- ... and when the victim paid it (optional)
    batch_id       INTEGER NOT NULL
);

CREATE TABLE calls (
    ts         TIMESTAMP NOT NULL,
    caller     VARCHAR NOT NULL,          -- phone number or phone card of the caller
    callee     VARCHAR NOT NULL,
    duration_s INTEGER,
    batch_id   INTEGER NOT NULL
);

-- Ground truth shipped inside some public data sets (AMLSim is_sar, AMLworld Is Laundering).
-- Only `fundtrace evaluate` reads it; detectors never do.
CREATE TABLE labels (
    source   VARCHAR NOT NULL,            -- amlsim | amlworld | ...
    entity   VARCHAR NOT NULL,            -- transaction | account
    txn_id   VARCHAR,
    bank     VARCHAR,
    account  VARCHAR,
    is_fraud BOOLEAN NOT NULL,
    alert_id VARCHAR,
    typology VARCHAR,
    batch_id INTEGER NOT NULL
);
