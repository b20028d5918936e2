"""Transport-security probes: the MTA-STS policy fetch (HTTPS) and the SMTP STARTTLS probe.

``results`` is the pure half (the stored results, the probes table's rows, the verdict
columns); ``https``, ``smtp``, ``tls`` and ``x509`` are the network half; ``settings`` says what
the probes may touch. Nothing is imported here, so reading ``results`` never loads the network
half.
"""
