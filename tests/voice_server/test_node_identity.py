"""The node id is kept per data directory, and owned by one process at a time."""

from voice_server.node_identity import claim_node_identity


def test_the_id_survives_a_restart_and_a_second_process_gets_its_own(tmp_path):
    first = claim_node_identity(None, tmp_path)
    assert first.owns_previous_rows
    # another process on the same data directory while the first runs: its own id, and
    # it must not take the first one's open rows for leftovers of its own
    second = claim_node_identity(None, tmp_path)
    assert second.node_id != first.node_id and not second.owns_previous_rows
    second.release()
    first.release()  # the process ends (the kernel does this on kill -9 too)

    again = claim_node_identity(None, tmp_path)
    try:
        assert again.node_id == first.node_id and again.owns_previous_rows
    finally:
        again.release()


def test_a_configured_node_id_wins(tmp_path):
    identity = claim_node_identity("pod-7", tmp_path)
    assert identity.node_id == "pod-7" and identity.owns_previous_rows
    assert not (tmp_path / "node-id").exists()
