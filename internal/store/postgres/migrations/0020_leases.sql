-- Leases: which socle replica does the work of a scope (the platform, an
-- environment), for how long, and under which fencing epoch (see lease.go).
-- A holder renews expires_at; another replica takes the scope over only
-- once expires_at has passed, by the database's clock, and the epoch then
-- grows by one: writes made under the lease carry their epoch, and a write
-- whose epoch is no longer the scope's, or whose lease has expired, is
-- refused in its own transaction.
CREATE TABLE leases (
    scope      text COLLATE "C" PRIMARY KEY CHECK (scope <> ''),
    holder     jsonb       NOT NULL,
    epoch      bigint      NOT NULL CHECK (epoch > 0),
    acquired_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
