-- 0004 scoring and decisions: account scores with reason codes, the freeze list (latest), the freeze
-- requests issued to banks (remembered so reruns renew or lift them), screened payments' decisions and
-- the phone cards flagged for scam calls. account_scores, freeze_list and flagged_phones are rebuilt by
-- fundtrace.score.run; freeze_requests and payment_decisions only grow (their history is the audit trail).

CREATE TABLE account_scores (
    bank          VARCHAR NOT NULL,
    account       VARCHAR NOT NULL,
    account_id    UBIGINT NOT NULL,
    score         DOUBLE NOT NULL CHECK (score >= 0 AND score <= 1),
    band          VARCHAR NOT NULL,         -- allow | review | hold | freeze
    reasons       VARCHAR NOT NULL,         -- 'PASS_THROUGH 0.350; HOLDS_VICTIM_FUNDS 0.300' (sums to score)
    reason_list   STRUCT(code VARCHAR, contribution DOUBLE)[] NOT NULL,
    kind          VARCHAR,
    phone         VARCHAR,
    opened_at     TIMESTAMP,
    first_ts      TIMESTAMP,                -- first transaction in or out
    last_ts       TIMESTAMP,
    n_in          BIGINT NOT NULL,
    n_out         BIGINT NOT NULL,
    in_amount     DECIMAL(18, 4) NOT NULL,
    out_amount    DECIMAL(18, 4) NOT NULL,
    max_out       DECIMAL(18, 4),
    in_recent     DECIMAL(18, 4) NOT NULL,  -- money in during the last recent_days before as_of
    out_recent    DECIMAL(18, 4) NOT NULL,
    ring          BOOLEAN NOT NULL,         -- member of a card-farm ring alert
    held_victim   DECIMAL(18, 4) NOT NULL,  -- victims' money held under the score rule (after the share filter)
    cases         INTEGER NOT NULL,         -- reported cases whose money it holds
    frozen        BOOLEAN NOT NULL,         -- has an active freeze or stop-payment request
    as_of         TIMESTAMP NOT NULL,       -- the data time the score describes
    scored_at     TIMESTAMP NOT NULL
);

CREATE TABLE freeze_list (
    bank             VARCHAR NOT NULL,
    account          VARCHAR NOT NULL,
    account_id       UBIGINT NOT NULL,
    case_ids         VARCHAR NOT NULL,      -- ';'-separated, sorted
    holder_name      VARCHAR,
    hop_level        INTEGER NOT NULL,      -- lowest level at which victims' money reached it (1 = paid by a victim)
    traced_amount    DECIMAL(18, 4) NOT NULL,  -- victims' money it holds under the rule (all its cases)
    amount_to_freeze DECIMAL(18, 4) NOT NULL,  -- <= traced_amount, and <= the balance at each holding time
    balance          DECIMAL(18, 4) NOT NULL,  -- the balance at the latest holding time
    currency         VARCHAR NOT NULL,
    rule             VARCHAR NOT NULL,
    score            DOUBLE NOT NULL,
    band             VARCHAR NOT NULL,
    reason_codes     VARCHAR NOT NULL,
    evidence_txn_ids VARCHAR NOT NULL,      -- ';'-separated payments that brought victims' money in
    evidence_sha256  VARCHAR NOT NULL,
    first_tainted_at TIMESTAMP NOT NULL,
    last_tainted_at  TIMESTAMP NOT NULL,
    stop_pay         BOOLEAN NOT NULL,      -- first-level account with fresh victims' money: 48 h stop-payment first
    priority         INTEGER NOT NULL,      -- 1 = first
    as_of            TIMESTAMP NOT NULL
);

CREATE TABLE freeze_requests (
    request_id       VARCHAR PRIMARY KEY,
    request_type     VARCHAR NOT NULL,      -- STOP_PAY_48H | FREEZE | RENEW | UNFREEZE
    bank             VARCHAR NOT NULL,
    account          VARCHAR NOT NULL,
    case_ids         VARCHAR NOT NULL,
    amount_to_freeze DECIMAL(18, 4) NOT NULL,
    rule             VARCHAR NOT NULL,
    requested_at     TIMESTAMP NOT NULL,
    expires_at       TIMESTAMP,             -- NULL for UNFREEZE
    status           VARCHAR NOT NULL,      -- active | superseded | lifted | expired
    evidence_sha256  VARCHAR
);

CREATE TABLE payment_decisions (
    txn_id       VARCHAR NOT NULL,
    ts           TIMESTAMP NOT NULL,
    src_bank     VARCHAR NOT NULL,
    src_account  VARCHAR NOT NULL,
    dst_bank     VARCHAR NOT NULL,
    dst_account  VARCHAR NOT NULL,
    amount       DECIMAL(18, 4) NOT NULL,
    currency     VARCHAR,
    decision     VARCHAR NOT NULL,          -- allow | review | hold
    score        DOUBLE NOT NULL,
    reasons      VARCHAR NOT NULL,
    source       VARCHAR NOT NULL,          -- the screened file
    screened_at  TIMESTAMP NOT NULL
);

CREATE TABLE flagged_phones (
    phone  VARCHAR NOT NULL,
    reason VARCHAR NOT NULL                 -- SCAM_CALLER (called a victim before the payment) | FLAGGED_ACCOUNT
);
