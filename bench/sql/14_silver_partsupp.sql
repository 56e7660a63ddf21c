-- silver.partsupp: typed, valid rows whose part and supplier exist, the latest version of each key.
COPY (
    SELECT *
    FROM (
        SELECT
            as_bigint(ps_partkey) AS ps_partkey,
            as_bigint(ps_suppkey) AS ps_suppkey,
            as_int(ps_availqty) AS ps_availqty,
            as_decimal(ps_supplycost) AS ps_supplycost,
            ps_comment,
            _batch_date,
            _source_file
        FROM landed_partsupp
        WHERE has_key(ps_partkey)
            AND has_key(ps_suppkey)
            AND parses(ps_partkey, as_bigint(ps_partkey))
            AND parses(ps_suppkey, as_bigint(ps_suppkey))
            AND parses(ps_availqty, as_int(ps_availqty))
            AND parses(ps_supplycost, as_decimal(ps_supplycost))
    )
    WHERE coalesce(ps_availqty >= 0, TRUE)
        AND coalesce(ps_supplycost >= 0, TRUE)
        AND ps_partkey IN (SELECT p_partkey FROM read_parquet('${out}/silver/part.parquet'))
        AND ps_suppkey IN (SELECT s_suppkey FROM read_parquet('${out}/silver/supplier.parquet'))
    QUALIFY row_number() OVER (
        PARTITION BY ps_partkey, ps_suppkey ORDER BY _batch_date DESC, _source_file
    ) = 1
) TO '${out}/silver/partsupp.parquet' (FORMAT parquet, COMPRESSION zstd);
