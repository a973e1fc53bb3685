-- 0005 incremental detection state: what an incremental `fundtrace detect` keeps between runs so that it
-- recomputes only what a new batch can change (fundtrace.detect).
-- detect_pt_hits: every pass-through episode with all its columns (queries/detect/pass_through.sql, pt_hits),
--   replaced per account that new payments touch; the detectors that build on episodes read it.
-- detect_pt_episodes: now a view of it (corroboration reads each account's episodes over its whole history).
-- detect_chain_hops: every hop of queries/detect/chain.sql (ch_hops) with the two payments it joins, so that
--   only chains whose walk reaches a changed hop are walked again.
-- detect_names: the bank and account name of every account id the detectors have named so far (an id is a hash
--   of the two, so a name never changes): an incremental run names its alerts' members from it and from the new
--   batch instead of a pass over every payment.
-- detect_state: what the stored state holds (its format); a workspace without it gets a full run first.
-- The runner recreates detect_pt_hits and detect_chain_hops from their queries' columns at each full run.

CREATE TABLE detect_pt_hits (
    acct     UBIGINT,
    b        BIGINT,
    n_in     BIGINT,
    n_out    BIGINT,
    in_amt   DOUBLE,
    out_amt  DOUBLE,
    flow     DOUBLE,
    kept     DOUBLE,
    first_in BIGINT,
    last_in  BIGINT,
    last_out BIGINT,
    first_ts TIMESTAMP,
    last_ts  TIMESTAMP,
    score    DOUBLE
);

DROP TABLE IF EXISTS detect_pt_episodes;
CREATE VIEW detect_pt_episodes AS SELECT acct, b, first_ts, in_amt FROM detect_pt_hits;

CREATE TABLE detect_chain_hops (
    in_txn   VARCHAR,
    out_txn  VARCHAR,
    in_t     BIGINT,
    out_t    BIGINT,
    acct     UBIGINT,
    b        BIGINT,
    in_src   UBIGINT,
    in_amt   DOUBLE,
    in_cash  BOOLEAN,
    out_dst  UBIGINT,
    out_amt  DOUBLE,
    out_cash BOOLEAN
);

CREATE TABLE detect_names (  -- no key: one row per id by construction, and an index costs more than it saves
    account_id UBIGINT,
    bank       VARCHAR,
    account    VARCHAR
);

CREATE TABLE detect_state (
    name  VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
