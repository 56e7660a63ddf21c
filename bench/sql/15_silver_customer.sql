-- silver.customer: the snapshot and the change sets, typed, valid rows whose nation exists; the
-- latest landed version of each key wins.
COPY (
    SELECT *
    FROM (
        SELECT
            as_bigint(c_custkey) AS c_custkey,
            c_name,
            c_address,
            as_int(c_nationkey) AS c_nationkey,
            c_phone,
            as_decimal(c_acctbal) AS c_acctbal,
            c_mktsegment,
            c_comment,
            _batch_date,
            _source_file
        FROM landed_customer
        WHERE has_key(c_custkey)
            AND parses(c_custkey, as_bigint(c_custkey))
            AND parses(c_nationkey, as_int(c_nationkey))
            AND parses(c_acctbal, as_decimal(c_acctbal))
    )
    WHERE c_nationkey IN (SELECT n_nationkey FROM read_parquet('${out}/silver/nation.parquet'))
    QUALIFY row_number() OVER (PARTITION BY c_custkey ORDER BY _batch_date DESC, _source_file) = 1
) TO '${out}/silver/customer.parquet' (FORMAT parquet, COMPRESSION zstd);
