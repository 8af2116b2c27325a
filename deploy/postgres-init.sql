-- The users service owns the `users` database (POSTGRES_DB); the order service gets its own.
CREATE DATABASE orders;
