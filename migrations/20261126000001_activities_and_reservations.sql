-- Works on MySQL 8.0.16+ and MariaDB 10.11 (CHECK constraints are enforced on both).
-- Timestamps are stored in UTC: sqlx sets the session time_zone to +00:00.

CREATE TABLE activities (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    title          VARCHAR(200)    NOT NULL,
    starts_at      DATETIME(6)     NOT NULL,
    -- NULL means unlimited.
    capacity       INT UNSIGNED    NULL,
    status         VARCHAR(16)     NOT NULL DEFAULT 'open',
    -- Denormalised count of active reservations, updated in the same transaction as the
    -- reservation row; the row lock on the activity is what makes capacity hold under concurrency.
    reserved_count INT UNSIGNED    NOT NULL DEFAULT 0,
    -- Bumped on every change of reserved_count so that Redis copies can refuse stale writes.
    version        BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at     DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at     DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY idx_activities_starts_at (starts_at, id),
    CONSTRAINT chk_activities_status CHECK (status IN ('open', 'closed'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE reservations (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    activity_id BIGINT UNSIGNED NOT NULL,
    user_id     BIGINT UNSIGNED NOT NULL,
    state       VARCHAR(16)     NOT NULL,
    -- Starts at 1 and is bumped on every state change (see activities.version).
    version     BIGINT UNSIGNED NOT NULL DEFAULT 1,
    created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_reservations_activity_user (activity_id, user_id),
    KEY idx_reservations_user (user_id, id),
    CONSTRAINT fk_reservations_activity FOREIGN KEY (activity_id) REFERENCES activities (id),
    CONSTRAINT chk_reservations_state CHECK (state IN ('active', 'cancelled'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
