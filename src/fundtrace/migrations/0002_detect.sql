-- 0002 detection: alerts with their members and evidence, written by `fundtrace detect`, and one row
-- per detection run so that the next run can recompute only what new batches can change.

CREATE TABLE alerts (
    alert_id    VARCHAR PRIMARY KEY,      -- deterministic: typology + what identifies the hit
    typology    VARCHAR NOT NULL,
    score       DOUBLE NOT NULL CHECK (score >= 0 AND score <= 1),
    start_ts    TIMESTAMP NOT NULL,       -- the earliest evidence transaction (the alert's anchor)
    end_ts      TIMESTAMP NOT NULL,
    amount      DECIMAL(18, 4),
    n_accounts  INTEGER NOT NULL,
    n_txns      INTEGER NOT NULL,
    summary     VARCHAR NOT NULL,
    detected_at TIMESTAMP NOT NULL
);

CREATE TABLE alert_members (
    alert_id   VARCHAR NOT NULL,
    bank       VARCHAR NOT NULL,
    account    VARCHAR NOT NULL,
    account_id UBIGINT NOT NULL,
    role       VARCHAR NOT NULL,          -- source | mule | hub | sink | member
    level      INTEGER,                   -- mule level k (1 = first level), null when not layered
    PRIMARY KEY (alert_id, account_id)
);

CREATE TABLE alert_evidence (
    alert_id VARCHAR NOT NULL,
    txn_id   VARCHAR NOT NULL,
    PRIMARY KEY (alert_id, txn_id)
);

CREATE TABLE detect_runs (
    run_id       INTEGER PRIMARY KEY,
    started_at   TIMESTAMP NOT NULL,
    mode         VARCHAR NOT NULL,        -- full | incremental
    since        TIMESTAMP,               -- incremental: the earliest new transaction time considered
    max_batch_id INTEGER,                 -- the newest batch the run saw
    typologies   VARCHAR NOT NULL,        -- comma-separated typologies run
    settings     VARCHAR NOT NULL,        -- JSON of DetectSettings: a change forces a full run
    alerts       BIGINT NOT NULL
);
