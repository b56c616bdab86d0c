-- Works on MySQL 8.0.16+ and MariaDB 10.11.
-- Choices made at runtime that must outlive the process, one row per setting. The one setting
-- today is `cache_mode`: the mode the last `PUT /admin/cache` chose. At start it wins over
-- CACHE_MODE/--cache-mode (the service says so at WARN), so a restart does not silently undo a
-- runtime flip; the next PUT replaces it and `seed --reset` deletes it.
-- updated_at is UTC, like every timestamp here: sqlx sets the session time_zone to +00:00.

CREATE TABLE runtime_settings (
    name       VARCHAR(64)  NOT NULL,
    value      VARCHAR(255) NOT NULL,
    -- When the value was chosen (for cache_mode: the time of the flip).
    updated_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
