//! cache-sim: replays a key trace read-through (get; on a miss, set).
