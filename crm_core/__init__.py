"""The CRM domain: leads, deals, calls, transcripts, scoring, auth and the REST API."""
