"""The demo's and the tests' world: a synthetic .jp population and the DNS server that serves it."""
