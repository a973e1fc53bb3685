-- 0003 tracing: per-case flows and tainted holdings under five allocation rules, written by
-- fundtrace.trace.run (one run replaces the rows of the cases it traced, atomically).
-- taint_* / held_* are the victim's money in that flow / account under poison, haircut (proportional),
-- FIFO, LIFO and LIBR (lowest intermediate balance). See README "Tracing" for the exact semantics.

CREATE TABLE trace_flows (
    case_id       VARCHAR NOT NULL,
    hop           INTEGER NOT NULL,       -- 0 = the victim's payment; n = out of an account at level n
    txn_id        VARCHAR NOT NULL,       -- report:<case>:<n> for a deposit known only from the report
    ts            TIMESTAMP NOT NULL,
    src_bank      VARCHAR,
    src_account   VARCHAR,
    dst_bank      VARCHAR,
    dst_account   VARCHAR,
    amount        DECIMAL(18, 4) NOT NULL,
    taint_poison  DECIMAL(18, 4) NOT NULL,
    taint_haircut DECIMAL(18, 4) NOT NULL,
    taint_fifo    DECIMAL(18, 4) NOT NULL,
    taint_lifo    DECIMAL(18, 4) NOT NULL,
    taint_libr    DECIMAL(18, 4) NOT NULL,
    channel       VARCHAR,                -- added: the transaction's channel
    stop          VARCHAR                 -- added: why the money was not followed past dst (NULL = followed):
                                          -- cash_out | no_data_bank | max_hops
);

CREATE TABLE trace_holdings (
    case_id          VARCHAR NOT NULL,
    bank             VARCHAR NOT NULL,
    account          VARCHAR NOT NULL,
    account_id       UBIGINT NOT NULL,
    hop              INTEGER NOT NULL,    -- level: 1 = first-level account (paid by the victim)
    first_tainted_at TIMESTAMP NOT NULL,
    last_tainted_at  TIMESTAMP NOT NULL,
    balance          DECIMAL(18, 4) NOT NULL,  -- the account's balance at as_of
    held_poison      DECIMAL(18, 4) NOT NULL,
    held_haircut     DECIMAL(18, 4) NOT NULL,
    held_fifo        DECIMAL(18, 4) NOT NULL,
    held_lifo        DECIMAL(18, 4) NOT NULL,
    held_libr        DECIMAL(18, 4) NOT NULL,
    as_of            TIMESTAMP NOT NULL   -- the time these holdings describe (per case)
);
