-- What the claim's snapshot saw in progress: `running` lists the transactions that may still
-- commit rows the claim did not see — those listed in progress, and every id from the snapshot's
-- xmax up to `me`, a transaction id taken after the snapshot (ids at or above xmax are not
-- listed, and any of them may be in progress). `deleter` is the transaction the relay's deleter
-- (session $1, which only deletes) is running, if any, as a 32-bit xid.
--
-- A statement of its own, after the claim: with both in one statement, a claim once saw a row's
-- transaction neither listed in progress nor below `me`.
SELECT ARRAY(SELECT x::text::int8 FROM pg_snapshot_xip(snap) AS x
             UNION ALL
             SELECT generate_series(pg_snapshot_xmax(snap)::text::int8, me::text::int8 - 1)) AS running,
       deleter::text::int8 AS deleter
FROM (SELECT pg_current_snapshot() AS snap, pg_current_xact_id() AS me,
             (SELECT backend_xid FROM pg_stat_activity WHERE pid = $1) AS deleter) AS now
