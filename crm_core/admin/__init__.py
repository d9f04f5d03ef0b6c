"""What an organization's admins configure: its settings, coaching rule set, carrier numbers and
people. Each operation is one function on a connection, called by the API handlers and by the
``coachline users`` / ``coachline org`` commands alike, so both validate, write and audit the same way.
"""
