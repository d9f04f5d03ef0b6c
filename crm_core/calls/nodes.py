"""Which node carries each live call, and ending the calls of a node that died.

A node writes its id on a call when it takes the call's media (``create_call``
for the SIP edge, ``admit_stream`` for carrier streams); the id is cleared when
the call ends (``mark_call_ended``, or a carrier status that ends it). Each node
also renews its row in ``call_nodes`` (``beat``). A node killed mid-call leaves
its live calls naming it; they are ended as abnormal ('failed',
``ended_abnormally``) by the node itself when it starts again under the same id
(``end_calls_of_node``, before it takes any call), or by any other node once the
dead one's heartbeat is older than the stale time (``end_calls_of_dead_nodes``).
Both take each call once (``FOR UPDATE SKIP LOCKED``), across every organization.
"""

from __future__ import annotations

import asyncpg

from crm_core.calls.records import LIVE_STATUSES, mark_call_ended

# How long a node row with no call left may go without a heartbeat before it is forgotten:
# far past any stale time, so a node that merely missed beats is never taken for unknown.
FORGET_NODES_AFTER_S = 86400.0


async def beat(conn: asyncpg.Connection, node_id: str) -> None:
    """This node is alive (its calls are not to be ended by others)."""
    await conn.execute(
        """
        INSERT INTO call_nodes (node_id) VALUES ($1)
        ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now()
        """,
        node_id,
    )


async def end_calls_of_node(
    conn: asyncpg.Connection, node_id: str, *, limit: int = 500
) -> list[asyncpg.Record]:
    """End every call that still names ``node_id`` (its previous process died), ``limit`` per
    transaction: the calls that were live come back, ended abnormally; ones a carrier had
    already ended only lose the id."""
    ended: list[asyncpg.Record] = []
    while True:
        async with conn.transaction():
            claimed = await conn.fetch(
                """
                SELECT id, status FROM calls WHERE node_id = $1
                ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
                """,
                node_id,
                limit,
            )
            ended += await _end(conn, claimed)
        if len(claimed) < limit:
            return ended


async def end_calls_of_dead_nodes(
    conn: asyncpg.Connection, stale_s: float, *, this_node: str, limit: int = 500
) -> list[asyncpg.Record]:
    """End the calls of other nodes whose heartbeat is older than ``stale_s`` (or that have
    none); like ``end_calls_of_node``, the calls that were live come back."""
    async with conn.transaction():
        claimed = await conn.fetch(
            """
            SELECT c.id, c.status FROM calls c
            WHERE c.node_id IS NOT NULL AND c.node_id <> $1
              AND NOT EXISTS (SELECT 1 FROM call_nodes n
                              WHERE n.node_id = c.node_id
                                AND n.heartbeat_at >= now() - make_interval(secs => $2))
            ORDER BY c.created_at LIMIT $3 FOR UPDATE OF c SKIP LOCKED
            """,
            this_node,
            float(stale_s),
            limit,
        )
        return await _end(conn, claimed)


async def forget_dead_nodes(conn: asyncpg.Connection, after_s: float = FORGET_NODES_AFTER_S) -> int:
    """Drop the rows of nodes silent for ``after_s`` that carry no call (ids of pods gone for good)."""
    result = await conn.execute(
        """
        DELETE FROM call_nodes n
        WHERE n.heartbeat_at < now() - make_interval(secs => $1)
          AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.node_id = n.node_id)
        """,
        float(after_s),
    )
    return int(result.split()[-1])


async def _end(conn: asyncpg.Connection, claimed: list[asyncpg.Record]) -> list[asyncpg.Record]:
    ended = []
    for row in claimed:
        was_live = row["status"] in LIVE_STATUSES
        after = await mark_call_ended(conn, row["id"], abnormal=was_live)
        if was_live and after is not None:
            ended.append(after)
    return ended
