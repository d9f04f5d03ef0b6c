"""Who is speaking on a mixed-channel call: speaker embeddings and online diarization.

Two-track calls (Twilio both_tracks, SIP legs, SIPREC) know the party from
the track and need none of this. A mixed stream (Vonage's single WebSocket,
an uploaded recording) has both voices in one channel, so:

* ``encoder.SpeakerEncoder`` turns speech into a 256-dim unit "d-vector"
  that is close (cosine) for the same voice and far for different voices.
* ``diarizer.OnlineDiarizer`` clusters those embeddings over a live call,
  so each stretch of speech gets a speaker label about one window after it
  was spoken (``clustering`` holds the k-means it uses).
"""
