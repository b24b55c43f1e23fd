"""Evidence that holds up (issue 22): what makes a stored measurement tamper-evident.

Contract: pure, no database and no network. ``canonical`` is the one encoding of a record (RFC
8785, the JSON Canonicalization Scheme, through the ``rfc8785`` package) and its SHA-256, the
fields a measurement's record holds, and the chain's link; ``keys`` is the probe's pseudonymous
Ed25519 key (made, loaded, signing and checking); ``heads`` is a signed chain-head statement.
The store (``probe.store``) hashes and links each measurement as it saves it and signs heads;
``probe.analyst.verify`` checks them. Nothing here names a person: a device is its public key.
"""
