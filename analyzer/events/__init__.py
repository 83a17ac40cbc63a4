"""Protocol events per connection, from one of two engines (``builtin``, ``tshark``) behind
``read.read_evidence``."""
