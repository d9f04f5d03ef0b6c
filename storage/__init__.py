"""Persistence at the edge: PostgreSQL (asyncpg), Redis, the event bus, the recording store."""
