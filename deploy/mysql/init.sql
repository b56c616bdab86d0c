-- `leaklab` is created by MYSQL_DATABASE; `test` is what `cargo test` connects to by default
-- (each test then creates and drops its own database).
CREATE DATABASE IF NOT EXISTS test;
