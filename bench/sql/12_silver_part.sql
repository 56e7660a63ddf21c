-- silver.part: typed, valid rows, the latest landed version of each key.
COPY (
    SELECT *
    FROM (
        SELECT
            as_bigint(p_partkey) AS p_partkey,
            p_name,
            p_mfgr,
            p_brand,
            p_type,
            as_int(p_size) AS p_size,
            p_container,
            as_decimal(p_retailprice) AS p_retailprice,
            p_comment,
            _batch_date,
            _source_file
        FROM landed_part
        WHERE has_key(p_partkey)
            AND parses(p_partkey, as_bigint(p_partkey))
            AND parses(p_size, as_int(p_size))
            AND parses(p_retailprice, as_decimal(p_retailprice))
    )
    WHERE coalesce(p_size >= 1, TRUE) AND coalesce(p_retailprice >= 0, TRUE)
    QUALIFY row_number() OVER (PARTITION BY p_partkey ORDER BY _batch_date DESC, _source_file) = 1
) TO '${out}/silver/part.parquet' (FORMAT parquet, COMPRESSION zstd);
