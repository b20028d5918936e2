"""Pure policy modules: each reads a domain's stored answers and returns its columns, never the network."""
