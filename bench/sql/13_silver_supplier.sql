-- silver.supplier: typed, valid rows whose nation exists, the latest landed version of each key.
COPY (
    SELECT *
    FROM (
        SELECT
            as_bigint(s_suppkey) AS s_suppkey,
            s_name,
            s_address,
            as_int(s_nationkey) AS s_nationkey,
            s_phone,
            as_decimal(s_acctbal) AS s_acctbal,
            s_comment,
            _batch_date,
            _source_file
        FROM landed_supplier
        WHERE has_key(s_suppkey)
            AND parses(s_suppkey, as_bigint(s_suppkey))
            AND parses(s_nationkey, as_int(s_nationkey))
            AND parses(s_acctbal, as_decimal(s_acctbal))
    )
    WHERE s_nationkey IN (SELECT n_nationkey FROM read_parquet('${out}/silver/nation.parquet'))
    QUALIFY row_number() OVER (PARTITION BY s_suppkey ORDER BY _batch_date DESC, _source_file) = 1
) TO '${out}/silver/supplier.parquet' (FORMAT parquet, COMPRESSION zstd);
