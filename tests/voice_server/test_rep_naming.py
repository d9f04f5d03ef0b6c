"""A rep enrolled from one earlier call is named on mixed telephone calls with other real voices.

Real speech (tests/voice_server/rep_naming_world.py): the rep is the English
Asterisk voice, learnt from one two-track call through ``RepVoiceLearner``;
each mixed call pairs the rep with another real voice at telephone quality and
is replayed through the server's ``SpeakerLabeller``. The share of segments
named right must stay >= 90 % (scripts/bench/rep_naming.py measures more).
"""

from __future__ import annotations

import pytest

from media.speakers.encoder import SpeakerEncoder
from tests.voice_server.rep_naming_world import World, available, enrol, label_call, score

pytestmark = pytest.mark.skipif(
    not available(),
    reason="needs Debian asterisk-core-sounds-{en,fr,it,ru}-wav and asterisk-prompt-it-menardi-wav "
    "(scripts/apt-test.txt)",
)

# Customer-first calls put the customer's long opening turn before any rep speech,
# and rep-first ones a short rep turn before the customer's: both opening cases.
VOICES = ("it_IT_m_Carlo", "ru_RU_f_IvrvoiceRU", "speaker91")


def test_rep_and_customer_are_named_on_mixed_calls_after_one_enrolment_call():
    encoder = SpeakerEncoder()
    world = World.load(voices=VOICES)
    rep = enrol(encoder, world.enrolment_calls(1))
    total, wrong = None, []
    for voice, pcm, turns in world.mixed_calls(per_voice=2, turns=4, voices=VOICES):
        named = label_call(encoder, rep.to_array(), pcm, turns)
        s = score(turns, named)
        total = s if total is None else total + s
        wrong += [(voice, j, t.who, n) for j, (t, n) in enumerate(zip(turns, named)) if t.who != n]
    assert total.segments == 48
    assert total.unnamed == 0, wrong
    assert total.rate >= 0.9, wrong
