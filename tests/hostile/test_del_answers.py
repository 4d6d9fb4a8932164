"""``HANDLE_DEL`` answers on the wire: upstream peers wait for one per request (they keep a
callback until it arrives), rpyc-rs peers that announce ``quiet_del`` get none."""
import pytest

from hostile_wire import (
    HANDLE_PING, LABEL_LOCAL_REF, LABEL_VALUE, MSG_REPLY, RawClient, brine, frame, request,
    request_payload,
)
from test_limits import HANDLE_DEL, boxed_args, raw_getroot

pytestmark = pytest.mark.timeout(60)

HELLO = ("rpyc-rs/hello", 1, ("quiet_del",))


@pytest.mark.parametrize("announce", [False, True], ids=["upstream-like", "quiet_del"])
def test_del_is_answered_unless_the_peer_said_it_needs_no_answer(server, announce):
    with RawClient(server.port) as c:
        if announce:
            c.send(request(1, HANDLE_PING, (HELLO,)))
            mtype, seq, (label, ack) = c.recv_message()
            assert (mtype, seq, label) == (MSG_REPLY, 1, LABEL_VALUE)
            assert "quiet_del" in ack[2]
        root = raw_getroot(c, 2)
        c.send(frame(request_payload(3, HANDLE_DEL, boxed_args((LABEL_LOCAL_REF, root), (LABEL_VALUE, 1)))))
        c.send(request(4, HANDLE_PING, ("after",)))
        answers = [c.recv_message()[:2]]
        if not announce:
            answers.append(c.recv_message()[:2])
        expected = [(MSG_REPLY, 4)] if announce else [(MSG_REPLY, 3), (MSG_REPLY, 4)]
        assert answers == expected
        c.send(request(5, HANDLE_PING, ("still there",)))
        assert c.recv_message()[:2] == (MSG_REPLY, 5)


def test_a_malformed_del_is_answered_with_an_error(server):
    with RawClient(server.port) as c:
        c.send(frame(request_payload(1, HANDLE_DEL, brine((LABEL_VALUE, ("not", "a", "proxy", 4))))))
        mtype, seq, _ = c.recv_message()
        assert seq == 1 and mtype != MSG_REPLY  # an exception answer, not a crash
        c.send(request(2, HANDLE_PING, ("ok",)))
        assert c.recv_message()[:2] == (MSG_REPLY, 2)
